#!/usr/bin/env bash
# ipmi-peer.sh: a real IPMI-over-LAN (RMCP+) BMC for hactl's fencing tests.
#
# Runs OpenIPMI's ipmi_sim on 127.0.0.1:PORT with a chassis whose power state
# the simulator tracks through a small chassis-control program written into
# DIR (no VM needed): "power on/off" flips DIR/power, "get power" reads it,
# every call is appended to DIR/chassis.log so that tests can see what
# reached the chassis.
#
#   ipmi-peer.sh install          install openipmi + ipmitool if missing (root)
#   ipmi-peer.sh start DIR PORT   start a simulator (DIR: private, created)
#   ipmi-peer.sh stop DIR         stop it (only the ipmi_sim this DIR started)
#   ipmi-peer.sh power DIR        print the chassis power state: on|off
#   ipmi-peer.sh vm-pid DIR       VM mode: print the PID of the running VM
#
# Users: admin/fxpass (administrator), operator/oppass (operator),
# viewer/vpass (user). Options for start, from the environment:
#   HACTL_IPMI_POWER=on|off       initial power state (default off)
#   HACTL_IPMI_OFF_DELAY_MS=N     after a power-down the chassis keeps
#                                 reporting "on" for N ms (a slow chassis)
#   HACTL_IPMI_BMC_KEY=KEY        give the BMC a BMC key (Kg)
#   HACTL_IPMI_PRIV_LIMIT=PRIV    the LAN channel's privilege limit
#                                 (user|operator|admin, default admin)
#   HACTL_IPMI_VM_KERNEL=PATH     VM mode: the chassis is a TCG QEMU VM
#                                 booting this kernel (power on starts it,
#                                 power off makes it exit through QEMU's
#                                 ipmi-bmc-extern device); "power" is then
#                                 whether that qemu process exists
#   HACTL_IPMI_VM_PORT=N          VM mode: TCP port of the qemu<->ipmi_sim link
#   HACTL_QEMU=CMD                VM mode: the qemu-system-x86_64 to run
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lock=/tmp/hactl-ipmi-peer-install.lock
# How long start waits for the simulator to answer: it is up in ~50 ms.
ready_wait_tenths=50

die() { echo "ipmi-peer: $*" >&2; exit 1; }

install() {
  command -v ipmi_sim >/dev/null && command -v ipmitool >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "ipmi_sim/ipmitool are missing and this is not root: apt-get install openipmi ipmitool"
  # Parallel tests may all find the packages missing: one installs, the
  # others wait for it (apt would otherwise fail on its own lock).
  exec 9>"$lock"
  flock 9
  if ! command -v ipmi_sim >/dev/null || ! command -v ipmitool >/dev/null; then
    echo "ipmi-peer: installing openipmi ipmitool" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends openipmi ipmitool >&2 ||
      { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends openipmi ipmitool >&2; }
  fi
  flock -u 9
  command -v ipmi_sim >/dev/null && command -v ipmitool >/dev/null || die "installing openipmi ipmitool failed"
}

is_sim() { # pid: true if it is a running (not zombie) ipmi_sim
  [ -n "${1:-}" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = ipmi_sim ] &&
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

write_chassis_program() { # dir
  local dir=$1
  # ipmi_sim runs "PROGRAM get power" / "PROGRAM set power 0|1" /
  # "PROGRAM set reset 1" through popen and reads "power:N" back.
  cat >"$dir/chassis-control" <<EOF
#!/bin/sh
dir='$dir'
off_delay_ms=${HACTL_IPMI_OFF_DELAY_MS:-0}
echo "\$*" >>"\$dir/chassis.log"
now_ms() { date +%s%3N; }
op=\$1; shift
case \$op in
get)
  for p in "\$@"; do
    case \$p in
    power)
      v=\$(cat "\$dir/power")
      if [ "\$v" = 0 ] && [ -f "\$dir/off-at" ] && [ "\$(now_ms)" -lt "\$(cat "\$dir/off-at")" ]; then v=1; fi
      echo "power:\$v" ;;
    boot) echo "boot:default" ;;
    *) echo "unknown parameter \$p"; exit 1 ;;
    esac
  done ;;
set)
  while [ \$# -ge 2 ]; do
    case \$1 in
    power)
      if [ "\$2" = 0 ] && [ "\$(cat "\$dir/power")" = 1 ] && [ "\$off_delay_ms" -gt 0 ]; then
        echo \$(( \$(now_ms) + off_delay_ms )) >"\$dir/off-at"
      fi
      if [ "\$2" = 1 ]; then rm -f "\$dir/off-at"; fi
      echo "\$2" >"\$dir/power" ;;
    reset|boot|identify) ;;
    *) echo "unknown parameter \$1"; exit 1 ;;
    esac
    shift 2
  done ;;
*) echo "unknown operation \$op"; exit 1 ;;
esac
EOF
  chmod 0755 "$dir/chassis-control"
}

vm_chassis_lines() { # dir: the lan.conf lines of a QEMU chassis
  local dir=$1 kernel=$HACTL_IPMI_VM_KERNEL vmport=${HACTL_IPMI_VM_PORT:-}
  [ -r "$kernel" ] || die "HACTL_IPMI_VM_KERNEL: cannot read $kernel"
  [ -n "$vmport" ] || die "VM mode needs HACTL_IPMI_VM_PORT (a free TCP port)"
  # The system interface (channel 15) speaks the "VM" codec to QEMU's
  # ipmi-bmc-extern, which connects to it as a client: power off is a
  # message to QEMU, which exits at once. panic=0 keeps the root-less
  # kernel alive after its panic, so the VM stays "on". ipmi_sim runs
  # startcmd as sh -c "exec ...", and nice execs qemu: the PID it tracks
  # (and -pidfile records) is qemu's.
  cat <<EOF
  serial 15 127.0.0.1 $vmport codec VM
  startcmd "nice -n 19 ${HACTL_QEMU:-qemu-system-x86_64} -accel tcg -machine pc -m 128 -smp 1 -nodefaults -display none -monitor none -serial file:$dir/console.log -kernel $kernel -append 'console=ttyS0 panic=0 loglevel=4' -chardev socket,id=ipmi0,host=127.0.0.1,port=$vmport,reconnect=1 -device ipmi-bmc-extern,id=bmc0,chardev=ipmi0 -device isa-ipmi-kcs,bmc=bmc0,irq=5 -pidfile $dir/qemu.pid"
  startnow false
  poweroff_wait 2
  kill_wait 2
EOF
}

vm_pid() { # dir: the PID of the simulator's live child (its VM), if any
  local sim
  sim=$(cat "$1/ipmi_sim.pid" 2>/dev/null) || return 0
  # ps fails when there is no child: that is an answer, not an error.
  { ps --ppid "$sim" -o pid=,stat= 2>/dev/null || true; } | awk '$2 !~ /^Z/ {print $1; exit}'
}

is_qemu() { # pid
  [ -n "${1:-}" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = qemu-system-x86 ] &&
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

start() { # dir port
  local dir=$1 port=$2 pid key_line="" chassis_lines
  install
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/ipmi_sim.pid" ] && is_sim "$(cat "$dir/ipmi_sim.pid")"; then
    die "a simulator already runs for $dir (pid $(cat "$dir/ipmi_sim.pid"))"
  fi
  # A fresh persistence directory every start: ipmi_sim keeps users there
  # and would ignore changed user lines.
  rm -rf "$dir/state" "$dir/off-at"
  mkdir -p "$dir/state"
  case ${HACTL_IPMI_POWER:-off} in on) echo 1 >"$dir/power" ;; off) echo 0 >"$dir/power" ;;
    *) die "HACTL_IPMI_POWER must be on or off" ;; esac
  : >"$dir/chassis.log"
  rm -f "$dir/chassis-control" "$dir/qemu.pid"
  [ -n "${HACTL_IPMI_VM_KERNEL:-}" ] || write_chassis_program "$dir"
  if [ -n "${HACTL_IPMI_BMC_KEY:-}" ]; then key_line="    bmc_key \"$HACTL_IPMI_BMC_KEY\""; fi
  if [ -n "${HACTL_IPMI_VM_KERNEL:-}" ]; then
    chassis_lines=$(vm_chassis_lines "$dir")
  else
    chassis_lines="  chassis_control \"$dir/chassis-control\""
  fi
  cat >"$dir/lan.conf" <<EOF
# ipmi_sim configuration written by hactl scripts/ipmi-peer.sh
name "hactl-test-bmc"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 $port
    priv_limit ${HACTL_IPMI_PRIV_LIMIT:-admin}
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    # RMCP+ needs a GUID (it enters the RAKP HMACs).
    guid 686163746c2d746573742d626d630001
$key_line
  endlan
$chassis_lines
  user 2 true "admin" "fxpass" admin 10 none md2 md5 straight
  user 3 true "operator" "oppass" operator 10 none md2 md5 straight
  user 4 true "viewer" "vpass" user 10 none md2 md5 straight
EOF
  # One management controller at IPMB 0x20 acting as the BMC; device
  # support 0x9f includes the chassis device.
  cat >"$dir/bmc.emu" <<EOF
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
mc_enable 0x20
EOF
  # Not detached (no setsid): it stays in the caller's process group, so a
  # test runner that kills a hung test's group takes the simulator along.
  ipmi_sim -n -c "$dir/lan.conf" -f "$dir/bmc.emu" -s "$dir/state" \
    </dev/null >"$dir/ipmi_sim.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/ipmi_sim.pid"
  for _ in $(seq 1 "$ready_wait_tenths"); do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/ipmi_sim.log" >&2; die "ipmi_sim exited at start (port $port taken?)"; }
    # Ready when a session opens (Get Device GUID: nothing reaches the
    # chassis). USER privilege works whatever the channel limit is.
    if ipmitool -I lanplus -H 127.0.0.1 -p "$port" -U admin -P fxpass -C 3 -L USER -N 1 -R 1 \
      ${HACTL_IPMI_BMC_KEY:+-k "$HACTL_IPMI_BMC_KEY"} mc guid >/dev/null 2>&1; then
      : >"$dir/chassis.log"
      echo "ipmi_sim ready: pid $pid, udp 127.0.0.1:$port, dir $dir"
      return 0
    fi
    sleep 0.1
  done
  stop "$dir" >/dev/null
  die "ipmi_sim on port $port did not answer; log: $(cat "$dir/ipmi_sim.log")"
}

stop() { # dir
  local dir=$1 pid vm
  [ -f "$dir/ipmi_sim.pid" ] || { echo "not running"; return 0; }
  pid=$(cat "$dir/ipmi_sim.pid")
  # ipmi_sim leaves its VM running when it exits: note ours first.
  vm=$(vm_pid "$dir")
  [ -n "$vm" ] || vm=$(cat "$dir/qemu.pid" 2>/dev/null || true)
  if is_sim "$pid"; then
    # ipmi_sim takes over a second to act on SIGTERM, and it has nothing to
    # save (its state directory is rebuilt at every start): kill it.
    kill -KILL "$pid"
    for _ in $(seq 1 100); do is_sim "$pid" || break; sleep 0.01; done
  fi
  rm -f "$dir/ipmi_sim.pid"
  if is_qemu "$vm"; then
    kill -KILL "$vm"
    for _ in $(seq 1 100); do is_qemu "$vm" || break; sleep 0.01; done
  fi
  rm -f "$dir/qemu.pid"
  echo stopped
}

power() { # dir
  local dir=$1 v
  if [ ! -x "$dir/chassis-control" ]; then
    # VM mode: on while the simulator has a live child (its VM); that is
    # also what ipmi_sim itself reports.
    if [ -n "$(vm_pid "$dir")" ]; then echo on; else echo off; fi
    return 0
  fi
  v=$("$dir/chassis-control" get power 2>/dev/null | sed -n 's/^power://p')
  # The call above was not made by the simulator: keep the log truthful.
  sed -i '$d' "$dir/chassis.log"
  case $v in 1) echo on ;; 0) echo off ;; *) die "cannot read the chassis power in $dir" ;; esac
}

case "${1:-}" in
  install) install ;;
  start) [ $# = 3 ] || die "usage: $0 start DIR PORT"; start "$2" "$3" ;;
  stop) [ $# = 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
  power) [ $# = 2 ] || die "usage: $0 power DIR"; power "$2" ;;
  vm-pid) [ $# = 2 ] || die "usage: $0 vm-pid DIR"; vm_pid "$2" ;;
  *) echo "usage: $0 install | start DIR PORT | stop DIR | power DIR | vm-pid DIR" >&2; exit 2 ;;
esac
