#!/usr/bin/env bash
# libvirt-peer.sh: a real libvirtd with a real QEMU domain for hactl's
# libvirt fencing tests, without systemd and without touching the machine's
# own libvirt state.
#
# Each peer is a private libvirtd (started by hand, nice 19) in its own
# PID namespace (whose init reaps qemu at once, see start) and mount
# namespace, where libvirt's fixed system directories are bind mounts of
# directories under DIR:
#
#   DIR/run   -> /run/libvirt        (sockets: DIR/run/libvirt-sock)
#   DIR/etc   -> /etc/libvirt        (libvirtd.conf, qemu.conf, the domain)
#   DIR/lib   -> /var/lib/libvirt
#   DIR/cache -> /var/cache/libvirt
#   DIR/log   -> /var/log/libvirt
#
# so that peers run side by side (parallel tests) and leave nothing behind
# but the five empty mount-point directories, created if missing. The
# domain is a TCG guest with no kernel and no disk: SeaBIOS finds nothing to
# boot and idles; what matters is a real qemu process whose state libvirt
# manages. qemu writes its log itself (stdio_handler "file"), so no virtlogd
# is needed.
#
#   libvirt-peer.sh install          install the packages if missing (root)
#   libvirt-peer.sh start DIR PORT   start a peer: libvirtd also on TCP
#                                    127.0.0.1:PORT (no authentication:
#                                    test only), domain running
#   libvirt-peer.sh stop DIR         stop the qemu and libvirtd this DIR started
#   libvirt-peer.sh qemu-pid DIR     the PID of the domain's live qemu, or nothing
#   libvirt-peer.sh virsh DIR ARGS   virsh against this peer (over its socket)
#
# start prints (and writes to DIR/peer.env) shell assignments: socket=,
# domain=, uuid=, unshare_pid= (a process in the peer's mount namespace, for
# nsenter -m), tcp_port=. Options for start, from the
# environment:
#   HACTL_LV_DOMAIN=NAME     the domain's name (default hactl-lv-<random>)
#   HACTL_LV_STATE=running|shutoff   the domain's state at start (default running)
#   HACTL_LV_AUTH_TCP=none|sasl      auth_tcp of the listener (default none)
#   HACTL_LV_AUTH_UNIX=none|polkit   auth_unix_rw of the socket (default none)
#   HACTL_LV_LISTEN_ADDR=ADDR        the TCP listener's address (default 127.0.0.1)
set -euo pipefail

lock=/tmp/hactl-libvirt-peer-install.lock
packages=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86)
# libvirtd answers within ~1 s; a loaded two-core machine needs more.
ready_wait_tenths=300
mounts=(run:/run/libvirt etc:/etc/libvirt lib:/var/lib/libvirt cache:/var/cache/libvirt log:/var/log/libvirt)

die() { echo "libvirt-peer: $*" >&2; exit 1; }

have_all() { command -v libvirtd >/dev/null && command -v virsh >/dev/null && command -v qemu-system-x86_64 >/dev/null; }

install() {
  have_all && return 0
  [ "$(id -u)" = 0 ] || die "libvirtd/virsh/qemu are missing and this is not root: apt-get install ${packages[*]}"
  # Parallel tests may all find the packages missing: one installs, the
  # others wait for it (apt would otherwise fail on its own lock).
  exec 9>"$lock"
  flock 9
  if ! have_all; then
    echo "libvirt-peer: installing ${packages[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2 ||
      { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2; }
  fi
  flock -u 9
  have_all || die "installing ${packages[*]} failed"
}

is_comm() { # pid comm: true if pid is a live (not zombie) process named comm
  [ -n "${1:-}" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] &&
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

v() { # dir args...: virsh against the peer in dir
  local dir=$1; shift
  virsh -q -c "qemu+unix:///system?socket=$dir/run/libvirt-sock" "$@"
}

ns_init() { # dir: the host PID of the peer's PID-namespace init (unshare's child)
  local u
  u=$(sed -n 's/^unshare_pid=//p' "$1/peer.env" 2>/dev/null) || return 0
  [ -n "$u" ] && cat "/proc/$u/task/$u/children" 2>/dev/null | awk '{print $1}'
}

qemu_pid() { # dir: the host PID of the domain's live qemu, if any
  local dir=$1 init p
  init=$(ns_init "$dir")
  [ -n "$init" ] || return 0
  # Daemonized by libvirt, qemu is a child of the namespace's init.
  for p in $(cat /proc/"$init"/task/*/children 2>/dev/null); do
    if is_comm "$p" qemu-system-x86; then echo "$p"; return 0; fi
  done
}

start() { # dir port
  local dir=$1 port=$2 name uuid pid m
  install
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/peer.env" ] && is_comm "$(sed -n 's/^unshare_pid=//p' "$dir/peer.env")" unshare; then
    die "a peer already runs for $dir (stop it first)"
  fi
  name=${HACTL_LV_DOMAIN:-hactl-lv-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')}
  uuid=$(cat /proc/sys/kernel/random/uuid)
  rm -rf "$dir/run" "$dir/etc" "$dir/lib" "$dir/cache" "$dir/log"
  mkdir -p "$dir/run" "$dir/etc/qemu" "$dir/lib" "$dir/cache" "$dir/log"
  for m in "${mounts[@]}"; do mkdir -p "${m#*:}"; done
  cat >"$dir/etc/libvirtd.conf" <<EOF
# written by hactl scripts/libvirt-peer.sh (test peer: no authentication)
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "${HACTL_LV_AUTH_UNIX:-none}"
listen_tls = 0
listen_tcp = 1
listen_addr = "${HACTL_LV_LISTEN_ADDR:-127.0.0.1}"
tcp_port = "$port"
auth_tcp = "${HACTL_LV_AUTH_TCP:-none}"
log_outputs = "3:file:$dir/libvirtd.log"
EOF
  # Root without a "libvirt-qemu" user (that comes with
  # libvirt-daemon-system, which also starts the machine's own daemons),
  # no cgroups, namespaces or security labels: nothing outside DIR changes.
  cat >"$dir/etc/qemu.conf" <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
EOF
  cat >"$dir/etc/qemu/$name.xml" <<EOF
<domain type='qemu'>
  <name>$name</name>
  <uuid>$uuid</uuid>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
  # libvirt's QEMU driver resolves its build-time default user and group
  # "libvirt-qemu" before it reads qemu.conf; libvirt-daemon-system would
  # create them on the machine. The peer's namespace gets its own copies of
  # passwd and group that have them instead.
  cp /etc/passwd "$dir/passwd"
  cp /etc/group "$dir/group"
  getent passwd libvirt-qemu >/dev/null || echo "libvirt-qemu:x:64055:64055:hactl test peer:/var/lib/libvirt:/usr/sbin/nologin" >>"$dir/passwd"
  getent group libvirt-qemu >/dev/null || echo "libvirt-qemu:x:64055:" >>"$dir/group"
  getent group kvm >/dev/null || echo "kvm:x:64056:" >>"$dir/group"
  # The peer's own PID namespace, whose init is this sh: libvirt starts
  # qemu daemonized, so qemu's parent is the namespace's init, and
  # libvirt's destroy waits (polling every 200 ms) until the qemu PID is
  # gone -- reaped, not just exited. This machine's PID 1 reaps orphans
  # about 1.5 s late; the sh reaps them at once (its wait takes any child),
  # as a systemd host's PID 1 would. Killing the init kills everything in
  # the namespace, libvirtd and qemu alike; --kill-child does that when
  # unshare dies, so a test runner that kills a hung test's process group
  # (unshare stays in it) leaves nothing running. The qemu children
  # inherit nice 19.
  # shellcheck disable=SC2016
  unshare --mount --propagation private --pid --fork --kill-child --mount-proc -- sh -c '
    dir=$1; shift
    for m in "$@"; do mount --bind "$dir/${m%%:*}" "${m#*:}" || exit 1; done
    mount --bind "$dir/passwd" /etc/passwd && mount --bind "$dir/group" /etc/group || exit 1
    nice -n 19 libvirtd -f "$dir/etc/libvirtd.conf" -p "$dir/libvirtd.pid" --listen &
    wait $!
  ' sh "$dir" "${mounts[@]}" </dev/null >"$dir/libvirtd.out" 2>&1 &
  pid=$!
  cat >"$dir/peer.env" <<EOF
socket=$dir/run/libvirt-sock
domain=$name
uuid=$uuid
unshare_pid=$pid
tcp_port=$port
EOF
  for _ in $(seq 1 "$ready_wait_tenths"); do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/libvirtd.out" "$dir/libvirtd.log" >&2 2>/dev/null; die "libvirtd exited at start (port $port taken?)"; }
    if [ -S "$dir/run/libvirt-sock" ] && v "$dir" domstate "$name" >/dev/null 2>&1; then
      if [ "${HACTL_LV_STATE:-running}" = running ]; then
        v "$dir" start "$name" >/dev/null || { stop "$dir" >/dev/null; die "virsh start $name failed"; }
      fi
      cat "$dir/peer.env"
      return 0
    fi
    sleep 0.1
  done
  stop "$dir" >/dev/null
  die "libvirtd for $dir did not answer; log: $(cat "$dir/libvirtd.out" "$dir/libvirtd.log" 2>/dev/null)"
}

stop() { # dir
  local dir=$1 u init qemu
  [ -f "$dir/peer.env" ] || { echo "not running"; return 0; }
  u=$(sed -n 's/^unshare_pid=//p' "$dir/peer.env")
  init=$(ns_init "$dir")
  qemu=$(qemu_pid "$dir")
  # Killing the namespace's init kills libvirtd and qemu with it; libvirtd
  # saves nothing we keep (DIR is rebuilt at every start).
  if [ -n "$init" ] && is_comm "$init" sh; then kill -KILL "$init" 2>/dev/null || true; fi
  if is_comm "$u" unshare; then kill -KILL "$u" 2>/dev/null || true; fi
  for _ in $(seq 1 300); do
    { is_comm "$u" unshare || is_comm "$qemu" qemu-system-x86 || { [ -n "$init" ] && [ -d "/proc/$init" ] && [ "$(awk '{print $3}' "/proc/$init/stat" 2>/dev/null)" != Z ]; }; } || break
    sleep 0.01
  done
  rm -f "$dir/peer.env" "$dir/libvirtd.pid"
  echo stopped
}

case "${1:-}" in
  install) install ;;
  start) [ $# = 3 ] || die "usage: $0 start DIR PORT"; start "$2" "$3" ;;
  stop) [ $# = 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
  qemu-pid) [ $# = 2 ] || die "usage: $0 qemu-pid DIR"; qemu_pid "$2" ;;
  virsh) [ $# -ge 2 ] || die "usage: $0 virsh DIR ARGS..."; d=$2; shift 2; v "$d" "$@" ;;
  *) echo "usage: $0 install | start DIR PORT | stop DIR | qemu-pid DIR | virsh DIR ARGS..." >&2; exit 2 ;;
esac
