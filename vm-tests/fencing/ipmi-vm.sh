#!/usr/bin/env bash
# ipmi-vm.sh: hactl's native IPMI fencing powers off a real (QEMU TCG) VM.
#
# ipmi_sim (scripts/ipmi-peer.sh, VM mode) is the BMC; its chassis is a
# QEMU VM attached through ipmi-bmc-extern, so "power off" makes QEMU exit.
# The test powers the VM on with hactl, waits until its kernel runs, fences
# it with hactl "off", and checks that the qemu process is gone by the time
# hactl reports the power off; ipmitool must agree. Run as root on Debian 12:
#
#   vm-tests/fencing/ipmi-vm.sh [ROUNDS]
#
# Installs qemu-system-x86 (never removing a package to do so: apt-get
# --no-remove) and fetches a Debian cloud kernel into $HACTL_TEST_CACHE
# (default /var/cache/hactl-tests). HACTL_QEMU=CMD uses another qemu binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
rounds=${1:-3}
cache=${HACTL_TEST_CACHE:-/var/cache/hactl-tests}
# The VM runs a kernel that panics (no root filesystem) and stays up
# (panic=0): under TCG at nice 19 its console shows the panic within
# a few seconds.
boot_wait_s=60
fence_timeout_ms=20000

fail() { echo "FAIL: $*" >&2; exit 1; }
free_port() { # proto (udp|tcp): a port nothing listens on now
  python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1]=="udp" else socket.SOCK_STREAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1" 2>/dev/null ||
    echo $(( 20000 + RANDOM % 20000 ))
}

scripts/ipmi-peer.sh install
if [ -z "${HACTL_QEMU:-}" ] && ! command -v qemu-system-x86_64 >/dev/null; then
  echo "installing qemu-system-x86"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-remove qemu-system-x86 ||
    fail "cannot install qemu-system-x86 without removing packages; set HACTL_QEMU to a qemu-system-x86_64"
fi

kernel=$(ls "$cache"/kernel/boot/vmlinuz-* 2>/dev/null | head -n 1 || true)
if [ -z "$kernel" ]; then
  pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image/ {print $2; exit}')
  [ -n "$pkg" ] || fail "no linux-image-cloud-amd64 in the package lists (apt-get update?)"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download "$pkg" >/dev/null) || fail "cannot download $pkg"
  mkdir -p "$cache/kernel"
  dpkg-deb -x "$tmp"/*.deb "$cache/kernel"
  rm -rf "$tmp"
  kernel=$(ls "$cache"/kernel/boot/vmlinuz-* | head -n 1)
fi

cargo build -q --example ipmi_fence
fence="$root/target/debug/examples/ipmi_fence"
[ -n "${CARGO_TARGET_DIR:-}" ] && fence="$CARGO_TARGET_DIR/debug/examples/ipmi_fence"

dir=$(mktemp -d /tmp/hactl-ipmi-vm.XXXXXX)
trap 'scripts/ipmi-peer.sh stop "$dir" >/dev/null; rm -rf "$dir"' EXIT
port=$(free_port udp)
HACTL_IPMI_VM_KERNEL=$kernel HACTL_IPMI_VM_PORT=$(free_port tcp) scripts/ipmi-peer.sh start "$dir" "$port"
echo fxpass >"$dir/password"
chmod 0600 "$dir/password"
hactl_fence() { "$fence" 127.0.0.1 "$port" admin "$dir/password" 3 "$@" "$fence_timeout_ms"; }
ipmitool_power() {
  ipmitool -I lanplus -H 127.0.0.1 -p "$port" -U admin -P fxpass -C 3 chassis power status
}

out=$(hactl_fence status) && fail "status of a VM never started: rc 0 ($out)"
[[ $out == off* ]] || fail "status: $out"

for round in $(seq 1 "$rounds"); do
  out=$(hactl_fence on) || fail "on: $out"
  [[ $out == on* ]] || fail "on: $out"
  vm=""
  for _ in $(seq 1 $((boot_wait_s * 10))); do
    vm=$(scripts/ipmi-peer.sh vm-pid "$dir")
    if [ -n "$vm" ] && [ "$(cat "/proc/$vm/comm" 2>/dev/null)" = qemu-system-x86 ] &&
      grep -q "Kernel panic" "$dir/console.log" 2>/dev/null; then break; fi
    vm=""
    sleep 0.1
  done
  [ -n "$vm" ] || fail "round $round: the VM did not boot within $boot_wait_s s"
  [[ $(ipmitool_power) == *"is on"* ]] || fail "round $round: ipmitool does not see the VM on"
  : >"$dir/console.log"

  out=$(hactl_fence off) || fail "round $round: off: $out"
  # The moment hactl reports the power off, the VM must be gone.
  if [ -d "/proc/$vm" ] && [ "$(awk '{print $3}' "/proc/$vm/stat" 2>/dev/null)" != Z ]; then
    fail "round $round: hactl said '$out' but qemu $vm still runs"
  fi
  [[ $out == off* ]] || fail "round $round: off: $out"
  [[ $(ipmitool_power) == *"is off"* ]] || fail "round $round: ipmitool does not see the VM off"
  echo "PASS round $round: hactl off confirmed in ${out#off } and qemu $vm is gone"
done

out=$(hactl_fence status) && fail "status after off: rc 0 ($out)"
[[ $out == off* ]] || fail "status after off: $out"
echo "PASS: ipmi-vm ($rounds rounds)"
