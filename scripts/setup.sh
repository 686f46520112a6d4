#!/usr/bin/env bash
# Installs every Debian package hactl's build, tests and demo need.
# Idempotent: installs only what is missing. Run as root on Debian 12.
set -euo pipefail

packages=(
  iproute2          # network namespaces, veth, bridges (demo, multi-node tests)
  dbus              # dbus-daemon for the D-Bus policy test; its init script and unit for the hactl ra tests
  util-linux        # setpriv (run a test client as an unprivileged user)
  e2fsprogs         # mkfs.ext4 for the filesystem agent tests (util-linux gives them losetup, blkid, findmnt)
  systemd           # systemd-analyze
  systemd-container # systemd-nspawn: real systemd nodes (vm-tests/nspawn)
  debootstrap       # the nspawn nodes' root filesystem
  curl              # the HTTP client of the web-cluster test and demo (vm-tests/nspawn/web-cluster.sh, scripts/demo.sh)
  jq                # reads `hactl status --json` in the web-cluster test and benchmark
  openipmi          # ipmi_sim: a real RMCP+ BMC for the IPMI fencing tests
  ipmitool          # cross-checks hactl's IPMI client on the same BMC
  resource-agents   # standard OCF agents (Dummy, IPaddr2) for the ocf: agent and hactl ra tests
  fence-agents      # fence_ipmilan: a real external fence agent for the agent fencing tests
  qemu-system-x86   # VMs: the softdog watchdog test (scripts/softdog-vm.sh), the libvirt test domain (TCG), vm-tests/fencing
  busybox-static    # the softdog test VM's initramfs
  libvirt-daemon    # libvirtd: the real peer of the libvirt fencing tests (scripts/libvirt-peer.sh)
  libvirt-daemon-driver-qemu # its QEMU driver (libvirt-daemon-system is not needed: no services started)
  libvirt-clients   # virsh: cross-checks hactl's libvirt client on the same daemon
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null || { echo "setup: cargo not found: install the Rust toolchain (rustup)" >&2; exit 1; }

# Members of this group may change the cluster through hactld's D-Bus API
# (conf/dbus/org.hactl.Cluster1.conf); the D-Bus policy test needs it too.
getent group haclient >/dev/null || groupadd --system haclient
