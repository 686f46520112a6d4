#!/bin/bash
# test-unit.sh: boots a real systemd (PID 1, journald, D-Bus) in a
# systemd-nspawn container and checks the shipped units/hactld.service
# against the real hactld: readiness (Type=notify), status text, watchdog,
# journal, reload, clean stop, and refusal to start (exit 78, no restart) on
# a bad configuration or an open key file; and hactld's D-Bus API on the
# container's real system bus with the shipped policy (`hactl quorum`,
# `hactl status`, as root and as nobody). See README.md beside this file.
#
# Usage (as root): vm-tests/nspawn/test-unit.sh
#
# Environment:
#   HACTL_CACHE              where rootfs.sh keeps the rootfs and this test
#                            its per-run overlay (default /var/cache/hactl-test)
#   HACTL_BIN_DIR            take hactld and hactl from here instead of
#                            running `cargo build --release`
#   HACTL_TEST_UNIT          the unit file to test (default units/hactld.service)
#   HACTL_TEST_DBUS_POLICY   the D-Bus policy to install
#                            (default conf/dbus/org.hactl.Cluster1.conf)
#   HACTL_TEST_CONFIG        the two-node configuration to install
#                            (default conf/appliance-2node.toml); its node
#                            addresses are put on a veth pair between two
#                            network namespaces that this run creates
#   HACTL_TEST_WATCHDOG_SEC  WatchdogSec= set by a drop-in (default 3, to keep
#                            the run short; the unit ships 10s)
#
# Exit status: 0 when every check passed, 1 otherwise (2: bad usage).
# Everything this run creates carries the prefix hactltest-$$ and is removed
# on exit: the container (nspawn and its PID 1), the two network namespaces
# (and so the veth pair in them), and the per-run overlay directory.
set -uo pipefail

T_START=$(date +%s%N)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${HACTL_CACHE:-/var/cache/hactl-test}
UNIT_SRC=${HACTL_TEST_UNIT:-$REPO/units/hactld.service}
CONF_SRC=${HACTL_TEST_CONFIG:-$REPO/conf/appliance-2node.toml}
POLICY_SRC=${HACTL_TEST_DBUS_POLICY:-$REPO/conf/dbus/org.hactl.Cluster1.conf}
WATCHDOG_SEC=${HACTL_TEST_WATCHDOG_SEC:-3}

PREFIX=hactltest-$$
NS_NODE=$PREFIX            # the container's network namespace (the node under test)
NS_PEER=$PREFIX-peer       # the other node's end of the veth
RUNDIR=$CACHE/runs/$PREFIX
MACHINE=$PREFIX
# In the container: the paths the unit uses.
CONF=/etc/hactl/cluster.toml
KEY=/etc/hactl/authkey

# Limits for every wait (seconds): generous, the machine is shared and noisy.
BOOT_TIMEOUT_S=180
START_TIMEOUT_S=90
JOURNAL_TIMEOUT_S=15
STOP_TIMEOUT_S=60

PASSED=0
FAILED=0
FAILED_NAMES=()
NSPAWN_PID=
CPID=
CREATED_NS=()
CREATED_RUNDIR=
CREATED_CGROUP=
T_PHASE=$T_START

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
since() { # "12.3s" since a date +%s%N stamp
  local d=$(( ($(date +%s%N) - $1) / 1000000 ))
  printf '%d.%01ds' $((d / 1000)) $(((d % 1000) / 100))
}
log() { printf '[%7s] %s\n' "$(since "$T_START")" "$*"; }
phase_done() { log "$1 done in $(since "$T_PHASE")"; T_PHASE=$(date +%s%N); }
pass() { PASSED=$((PASSED + 1)); printf 'PASS %s: %s\n' "$1" "$2"; }
fail() {
  FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1")
  printf 'FAIL %s: %s\n' "$1" "$2"
}
die() { printf 'FAIL setup: %s\n' "$*"; FAILED=$((FAILED + 1)); FAILED_NAMES+=(setup); exit 1; }

# shellcheck source=vm-tests/nspawn/lib/cgroup.sh
source "$HERE/lib/cgroup.sh"

# ---------------------------------------------------------------- cleanup

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  if [ -n "$CPID" ] && [ "$FAILED" -gt 0 ] && kill -0 "$CPID" 2>/dev/null; then
    # By unit, and hactld's own entries even where journald lost their unit.
    echo "---- last journal lines of hactld.service and of hactld (for the failure above) ----"
    cx journalctl --no-pager -n 40 -o short-monotonic _SYSTEMD_UNIT=hactld.service \
      + SYSLOG_IDENTIFIER=hactld + _PID=1 UNIT=hactld.service 2>&1 | sed 's/^/  | /'
    echo "---- systemctl status hactld ----"
    cx systemctl status hactld --no-pager -l 2>&1 | sed 's/^/  | /'
  fi
  # A hard kill of the whole container: its PID 1 (which takes every process
  # of its PID namespace with it) and the nspawn process.
  # (stderr off meanwhile: bash reports the killed background job there)
  exec 3>&2 2>/dev/null
  [ -n "$CPID" ] && kill -KILL "$CPID"
  [ -n "$NSPAWN_PID" ] && kill -KILL "$NSPAWN_PID"
  for i in $(seq 100); do
    { [ -z "$CPID" ] || ! kill -0 "$CPID"; } &&
      { [ -z "$NSPAWN_PID" ] || ! kill -0 "$NSPAWN_PID"; } && break
    sleep 0.1
  done
  [ -n "$NSPAWN_PID" ] && wait "$NSPAWN_PID"
  exec 2>&3 3>&-
  if [ -n "$CPID" ] && kill -0 "$CPID" 2>/dev/null; then
    echo "warning: container PID 1 ($CPID) still alive after SIGKILL"
  fi
  [ -n "$CREATED_CGROUP" ] && nspawn_cgroup_remove "$CREATED_CGROUP"
  for i in "${CREATED_NS[@]}"; do
    ip netns delete "$i" 2>/dev/null || echo "warning: cannot delete network namespace $i"
  done
  if [ -n "$CREATED_RUNDIR" ] && [ -d "$CREATED_RUNDIR" ]; then
    # nspawn mounted the overlay in its own mount namespace, gone with it;
    # refuse to delete through any mount that is still there.
    if awk -v d="$CREATED_RUNDIR/" 'index($2 "/", d) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
      echo "warning: mounts remain below $CREATED_RUNDIR; not removing it"
    else
      rm -rf --one-file-system "$CREATED_RUNDIR"
    fi
  fi
  echo
  if [ "$FAILED" -eq 0 ] && [ "$rc" -eq 0 ]; then
    echo "RESULT: all $PASSED checks passed in $(since "$T_START")"
    exit 0
  fi
  echo "RESULT: $FAILED check(s) FAILED (${FAILED_NAMES[*]:-interrupted}), $PASSED passed, in $(since "$T_START")"
  exit 1
}
trap cleanup EXIT
trap 'echo "interrupted"; FAILED_NAMES+=(interrupted); FAILED=$((FAILED + 1)); exit 1' INT TERM

# ---------------------------------------------------------------- helpers

# Runs a command in the container, with a clean environment.
cx() {
  nsenter -t "$CPID" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

# Loads unit properties into the associative array P.
declare -A P
props() {
  P=()
  local line
  while IFS= read -r line; do
    P[${line%%=*}]=${line#*=}
  done < <(cx systemctl show -p ActiveState,SubState,Result,StatusText,MainPID,NRestarts,ExecMainStatus,ExecMainCode,WatchdogUSec hactld 2>/dev/null)
}
show_props() { echo "ActiveState=${P[ActiveState]:-} SubState=${P[SubState]:-} Result=${P[Result]:-} MainPID=${P[MainPID]:-} NRestarts=${P[NRestarts]:-} ExecMainStatus=${P[ExecMainStatus]:-} StatusText=\"${P[StatusText]:-}\""; }

# A point in the journal: the time now (the container shares the host's
# clock; journald stamps each entry when it receives it). jsince MARK ARGS...
# prints the entries since then that match journalctl ARGS.
# (Not a cursor: journalctl 252 --after-cursor with a match such as -u skips
# the first matching entry whenever the cursor's own entry does not match.)
jmark() { date +%s.%6N; }
jsince() {
  local mark=$1; shift
  cx journalctl -q --no-pager -o cat --since="@$mark" "$@" 2>/dev/null
}
# Waits until the entries since MARK matching journalctl ARGS contain the
# fixed string TEXT: jwait MARK TEXT ARGS...
jwait() {
  local mark=$1 text=$2 deadline; shift 2
  deadline=$(( $(now_ms) + JOURNAL_TIMEOUT_S * 1000 ))
  while :; do
    jsince "$mark" "$@" | grep -qF -- "$text" && return 0
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.3
  done
}

# Polls the unit until `test_expr` (evaluated with P loaded) holds, or the
# timeout passes: wait_props SECONDS EXPR
wait_props() {
  local deadline=$(( $(now_ms) + $1 * 1000 ))
  while :; do
    props
    eval "$2" && return 0
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.3
  done
}

# Writes a file in the container from stdin: put PATH MODE
put() { cx sh -c "cat > '$1' && chmod $2 '$1'"; }

# ---------------------------------------------------------------- setup

[ "$(id -u)" = 0 ] || { echo "test-unit.sh: must run as root (systemd-nspawn, ip netns)"; exit 2; }
for f in "$UNIT_SRC" "$CONF_SRC" "$POLICY_SRC"; do
  [ -f "$f" ] || { echo "test-unit.sh: no such file: $f"; exit 2; }
done
case $WATCHDOG_SEC in ''|*[!0-9]*|0) echo "test-unit.sh: HACTL_TEST_WATCHDOG_SEC must be a positive number of seconds"; exit 2;; esac

log "run $PREFIX: unit $UNIT_SRC, config $CONF_SRC, WatchdogSec=${WATCHDOG_SEC}s"

# Leftovers of other runs are not ours to remove; say so.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^hactltest-[0-9]+(-peer)?$'); do
  pid=${ns#hactltest-}; pid=${pid%-peer}
  kill -0 "$pid" 2>/dev/null || echo "note: network namespace $ns is left from a run that no longer exists (ip netns delete $ns)"
done
for d in "$CACHE"/runs/hactltest-*; do
  [ -d "$d" ] || continue
  pid=${d##*/hactltest-}
  kill -0 "$pid" 2>/dev/null || echo "note: $d is left from a run that no longer exists (see README.md: cleaning up after a killed run)"
done

ROOTFS=$("$HERE/rootfs.sh") || die "rootfs.sh failed"
[ -x "$ROOTFS/usr/lib/systemd/systemd" ] || die "no systemd in $ROOTFS"
phase_done "rootfs ($ROOTFS)"

if [ -n "${HACTL_BIN_DIR:-}" ]; then
  BIN=$(realpath "$HACTL_BIN_DIR")
else
  log "cargo build --release"
  if ! (cd "$REPO" && cargo build --release --bins) > "$CACHE/cargo-build-$PREFIX.log" 2>&1; then
    tail -30 "$CACHE/cargo-build-$PREFIX.log"
    rm -f "$CACHE/cargo-build-$PREFIX.log"
    die "cargo build --release failed"
  fi
  rm -f "$CACHE/cargo-build-$PREFIX.log"
  BIN=${CARGO_TARGET_DIR:-$REPO/target}/release
fi
for b in hactld hactl; do [ -x "$BIN/$b" ] || die "no $BIN/$b"; done
phase_done "build"

# The two nodes of the configuration: names and first addresses, in order.
mapfile -t NODES < <("$BIN/hactl" config show "$CONF_SRC" | awk '
  /^\[\[node\]\]/ { innode = 1; next }
  /^\[/ { innode = 0 }
  innode && /^name = / { gsub(/"/, "", $3); name = $3 }
  innode && /^addresses = / { match($0, /"[^"]+"/); print name, substr($0, RSTART + 1, RLENGTH - 2) }')
[ "${#NODES[@]}" -ge 2 ] || die "$CONF_SRC: need two nodes with addresses (hactl config show found ${#NODES[@]})"
read -r NODE_NAME NODE_ADDR <<<"${NODES[0]}"
read -r PEER_NAME PEER_ADDR <<<"${NODES[1]}"
case $NODE_ADDR$PEER_ADDR in *:*) die "this test puts IPv4 node addresses on the veth; got $NODE_ADDR, $PEER_ADDR";; esac
# The container's host name is none of the node names: hactld has to find
# its node by the address on the veth.
HOSTNAME_IN=testhost
for n in "${NODES[@]}"; do [ "${n%% *}" != "$HOSTNAME_IN" ] || die "a node is named $HOSTNAME_IN"; done

# Network: node namespace <-veth-> peer namespace, the two node addresses.
ip netns add "$NS_NODE" || die "ip netns add $NS_NODE"
CREATED_NS+=("$NS_NODE")
ip netns add "$NS_PEER" || die "ip netns add $NS_PEER"
CREATED_NS+=("$NS_PEER")
ip -n "$NS_NODE" link add ha0 type veth peer name ha0 netns "$NS_PEER" || die "veth"
ip -n "$NS_NODE" addr add "$NODE_ADDR/24" dev ha0 || die "address $NODE_ADDR"
ip -n "$NS_PEER" addr add "$PEER_ADDR/24" dev ha0 || die "address $PEER_ADDR"
for ns in "$NS_NODE" "$NS_PEER"; do
  { ip -n "$ns" link set lo up && ip -n "$ns" link set ha0 up; } || die "link up in $ns"
done

# The per-run overlay: the cached rootfs below, this run's files on top.
mkdir -p "$RUNDIR" || die "mkdir $RUNDIR"
CREATED_RUNDIR=$RUNDIR
U=$RUNDIR/upper
mkdir -p "$U/etc/hactl" "$U/usr/sbin" "$U/usr/bin" "$U/etc/systemd/system/hactld.service.d" \
  "$U/usr/share/dbus-1/system.d"
echo "$HOSTNAME_IN" > "$U/etc/hostname"
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$U/etc/machine-id"; echo >> "$U/etc/machine-id"
install -m 0755 "$BIN/hactld" "$U/usr/sbin/hactld"
install -m 0755 "$BIN/hactl" "$U/usr/bin/hactl"
install -m 0644 "$UNIT_SRC" "$U/etc/systemd/system/hactld.service"
# Where the package puts it; the bus reads it when it starts (at boot).
install -m 0644 "$POLICY_SRC" "$U/usr/share/dbus-1/system.d/org.hactl.Cluster1.conf"
cat > "$U/etc/systemd/system/hactld.service.d/50-test-watchdog.conf" <<EOF
# test-unit.sh: a shorter watchdog, so that waiting past it is quick.
[Service]
WatchdogSec=${WATCHDOG_SEC}s
EOF
install -m 0644 "$CONF_SRC" "$U$CONF"
# The configuration manages systemd:appliance-app.service; here it is also
# enabled at boot (what `systemctl enable` leaves behind), which hactl must
# warn about (check w).
mkdir -p "$U/etc/systemd/system/multi-user.target.wants"
cat > "$U/etc/systemd/system/appliance-app.service" <<'EOF_UNIT'
[Unit]
Description=test-unit.sh: a managed service wrongly enabled at boot
[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
EOF_UNIT
ln -s ../appliance-app.service "$U/etc/systemd/system/multi-user.target.wants/appliance-app.service"
cp "$CONF_SRC" "$RUNDIR/good.toml"
# A broken copy: an unknown key on the line after [cluster], column 1.
CLUSTER_LINE=$(grep -n '^\[cluster\][[:space:]]*$' "$CONF_SRC" | head -1 | cut -d: -f1)
[ -n "$CLUSTER_LINE" ] || die "$CONF_SRC has no [cluster] line"
awk -v n="$CLUSTER_LINE" '{ print } NR == n { print "bogus_key = 1" }' "$CONF_SRC" > "$RUNDIR/bad.toml"
BAD_WHERE="$CONF:$((CLUSTER_LINE + 1)):1"
phase_done "setup (node $NODE_NAME $NODE_ADDR in netns $NS_NODE, its peer $PEER_NAME $PEER_ADDR in $NS_PEER; overlay $RUNDIR)"

# ---------------------------------------------------------------- boot

log "booting container $MACHINE"
# In a cgroup of its own (lib/cgroup.sh says why).
CREATED_CGROUP=$MACHINE
( nspawn_cgroup_enter "$MACHINE" || exit 1
  exec systemd-nspawn -q -D "$ROOTFS" --overlay="$ROOTFS:$U:/" \
  --register=no --keep-unit --link-journal=no \
  --network-namespace-path="/run/netns/$NS_NODE" \
  --capability=CAP_NET_ADMIN,CAP_IPC_LOCK \
  -M "$MACHINE" -b --console=pipe ) </dev/null >"$RUNDIR/console.log" 2>&1 &
NSPAWN_PID=$!

# The container's PID 1: the child of nspawn that is PID 1 in its namespace.
deadline=$(( $(now_ms) + 30000 ))
while [ -z "$CPID" ]; do
  for c in $(pgrep -P "$NSPAWN_PID" 2>/dev/null); do
    if awk '/^NSpid:/ { exit !($NF == 1 && NF == 3) }' "/proc/$c/status" 2>/dev/null; then CPID=$c; fi
  done
  [ -n "$CPID" ] && break
  kill -0 "$NSPAWN_PID" 2>/dev/null || { sed 's/^/  | /' "$RUNDIR/console.log"; die "systemd-nspawn exited"; }
  [ "$(now_ms)" -ge "$deadline" ] && die "no container PID 1 after 30 s"
  sleep 0.1
done

# Wait for the boot to settle (running, or degraded: then show what failed).
deadline=$(( $(now_ms) + BOOT_TIMEOUT_S * 1000 ))
state=
while :; do
  state=$(cx timeout 10 systemctl is-system-running 2>/dev/null)
  case $state in running|degraded) break;; esac
  kill -0 "$NSPAWN_PID" 2>/dev/null || { sed 's/^/  | /' "$RUNDIR/console.log"; die "the container died while booting"; }
  [ "$(now_ms)" -ge "$deadline" ] && die "system state still '$state' after ${BOOT_TIMEOUT_S}s"
  sleep 0.5
done
if [ "$state" = degraded ]; then
  echo "note: the container booted degraded (not a check of this test); failed units:"
  cx systemctl --failed --no-legend --no-pager | sed 's/^/  | /'
fi
phase_done "boot to '$state' ($(cx systemctl --version | head -1), container PID 1 = $CPID)"

# The cluster key, made the way an administrator does: `hactl keygen` on the node.
cx hactl keygen >/dev/null || die "hactl keygen in the container failed"
[ "$(cx stat -c '%U %a %s' "$KEY")" = "root 400 256" ] || die "hactl keygen wrote $(cx stat -c '%U %a %s' "$KEY")"

# ---------------------------------------------------------------- checks

# h first: what systemd itself thinks of the unit file, before we use it.
out=$(cx systemd-analyze verify /etc/systemd/system/hactld.service 2>&1); rc=$?
if [ "$rc" -eq 0 ] && [ -z "$out" ]; then
  pass h "systemd-analyze verify hactld.service: exit 0, no output"
else
  fail h "systemd-analyze verify hactld.service: exit $rc, output:"
  printf '%s\n' "$out" | sed 's/^/  | /'
fi

# a. start; READY=1 and STATUS= reached systemd.
cur=$(jmark)
out=$(cx timeout "$START_TIMEOUT_S" systemctl start hactld 2>&1); rc=$?
props
if [ "$rc" -ne 0 ]; then
  fail a "systemctl start hactld: exit $rc: $out; $(show_props)"
elif [ "${P[ActiveState]}" = active ] && [ "${P[SubState]}" = running ] &&
     [ "${P[MainPID]:-0}" -gt 0 ] && [[ ${P[StatusText]} == *"node $NODE_NAME "* ]]; then
  pass a "systemctl start hactld: active/running, MainPID=${P[MainPID]}, StatusText=\"${P[StatusText]}\""
else
  fail a "after start: expected active/running with \"node $NODE_NAME\" in StatusText; $(show_props)"
fi
MAINPID=${P[MainPID]:-0}
START_MARK=$cur
if [ "$MAINPID" -gt 0 ]; then
  # Not checked: what of the unit's limits and capabilities the container
  # (and the machine it runs on) let systemd apply.
  echo "info: hactld runs with oom_score_adj=$(cx cat /proc/"$MAINPID"/oom_score_adj)," \
    "$(cx awk '/^Max open files/ { printf "nofile=%s", $5 } /^Max locked memory/ { printf " memlock=%s", $5 }' /proc/"$MAINPID"/limits)," \
    "$(cx awk '/^CapBnd/ { print "CapBnd=" $2 }' /proc/"$MAINPID"/status)"
fi

# b. the watchdog: still the same process, never restarted, well past WatchdogSec.
wd_us=${P[WatchdogUSec]:-}
wait_s=$(( WATCHDOG_SEC * 3 ))
t0=$(now_ms)
deadline=$(( t0 + wait_s * 1000 ))
why=
while [ "$(now_ms)" -lt "$deadline" ]; do
  props
  if [ "${P[ActiveState]}" != active ] || [ "${P[MainPID]}" != "$MAINPID" ]; then
    why="after $(( ($(now_ms) - t0) / 1000 ))s: $(show_props)"
    break
  fi
  sleep 0.5
done
props
timeouts=$(jsince "$START_MARK" -u hactld | grep -ci 'watchdog timeout')
if [ "$MAINPID" -le 0 ]; then
  fail b "not checked: hactld did not start"
elif [ -n "$why" ]; then
  fail b "hactld did not survive ${wait_s}s with WatchdogSec=${WATCHDOG_SEC}s: $why; journal: $(jsince "$START_MARK" -u hactld | grep -i watchdog | tr '\n' ' ')"
elif [ "$wd_us" != "${WATCHDOG_SEC}s" ]; then
  fail b "WatchdogUSec=$wd_us, expected ${WATCHDOG_SEC}s (the drop-in did not apply)"
elif [ "${P[NRestarts]}" != 0 ] || [ "$timeouts" != 0 ]; then
  fail b "NRestarts=${P[NRestarts]}, 'watchdog timeout' in the journal $timeouts time(s)"
elif ! jwait "$START_MARK" "systemd watchdog every $((WATCHDOG_SEC * 1000)) ms" -u hactld; then
  fail b "survived, but hactld never logged that it saw the watchdog (WATCHDOG_USEC)"
else
  pass b "WatchdogUSec=$wd_us; after ${wait_s}s still active, MainPID=$MAINPID, NRestarts=0, no watchdog timeout"
fi

# c. the startup message, found by unit.
if jwait "$START_MARK" "started: node $NODE_NAME" -u hactld; then
  pass c "journalctl -u hactld: \"$(jsince "$START_MARK" -u hactld | grep -F "started: node $NODE_NAME" | head -1 | cut -c1-110)...\""
else
  fail c "journalctl -u hactld has no \"started: node $NODE_NAME\"; it has: $(jsince "$START_MARK" -u hactld | tr '\n' '|' | cut -c1-400)"
fi

# w. a managed unit enabled at boot: `hactl config check` and hactld warn.
w_msg="resource app: unit appliance-app.service is enabled to start at boot"
w_out=$(cx hactl config check "$CONF" 2>&1)
if ! grep -qF "$w_msg" <<<"$w_out"; then
  fail w "hactl config check does not warn \"$w_msg\": $(tr '\n' '|' <<<"$w_out" | cut -c1-400)"
elif ! jwait "$START_MARK" "unit appliance-app.service is enabled to start at boot" -u hactld; then
  fail w "hactld's journal does not warn that appliance-app.service is enabled at boot"
else
  pass w "hactl config check and hactld's journal: \"$w_msg ...\""
fi

# q. the D-Bus API on the real system bus: hactl quorum and hactl status,
# as root and as nobody (the shipped policy lets anyone read). The peer is
# not running: this node is alone, the peer offline.
q_out= q_why=
if [ "$MAINPID" -le 0 ]; then
  q_why="not checked: hactld did not start"
else
  # The API comes up beside the main loop, just after READY=1: poll.
  deadline=$(( $(now_ms) + START_TIMEOUT_S * 1000 ))
  while :; do
    q_out=$(cx hactl quorum 2>&1); rc=$?
    [ "$rc" -eq 0 ] && break
    [ "$(now_ms)" -ge "$deadline" ] && { q_why="hactl quorum: exit $rc: $q_out"; break; }
    sleep 0.3
  done
fi
if [ -z "$q_why" ]; then
  s_out=$(cx hactl status 2>&1); s_rc=$?
  n_out=$(cx setpriv --reuid=65534 --regid=65534 --clear-groups hactl quorum 2>&1); n_rc=$?
  j_out=$(cx setpriv --reuid=65534 --regid=65534 --clear-groups hactl status --json 2>&1); j_rc=$?
  v_out=$(cx busctl get-property org.hactl.Cluster1 /org/hactl/Cluster1 org.hactl.Cluster1 ApiVersion 2>&1)
  if ! grep -qF "Quorate:" <<<"$q_out" || ! grep -qF " $NODE_NAME (local)" <<<"$q_out"; then
    q_why="hactl quorum lacks Quorate: or \"$NODE_NAME (local)\": $(tr '\n' '|' <<<"$q_out")"
  elif [ "$s_rc" -ne 0 ] || ! grep -qF "Node:     $NODE_NAME " <<<"$s_out" ||
       ! grep -qF "* Offline: [ $PEER_NAME ]" <<<"$s_out"; then
    q_why="hactl status: exit $s_rc, expected \"Node:     $NODE_NAME\" and \"* Offline: [ $PEER_NAME ]\": $(tr '\n' '|' <<<"$s_out")"
  elif [ "$n_rc" -ne 0 ] || ! grep -qF " $NODE_NAME (local)" <<<"$n_out"; then
    q_why="hactl quorum as nobody: exit $n_rc: $(tr '\n' '|' <<<"$n_out")"
  elif [ "$j_rc" -ne 0 ] || ! grep -qF '"api_version": 1' <<<"$j_out"; then
    q_why="hactl status --json as nobody: exit $j_rc: $(tr '\n' ' ' <<<"$j_out" | cut -c1-300)"
  elif [ "$v_out" != "u 1" ]; then
    q_why="busctl get-property ... ApiVersion: \"$v_out\", expected \"u 1\""
  fi
fi
if [ -z "$q_why" ]; then
  pass q "hactl quorum and hactl status over the system bus (root and nobody), ApiVersion=1: \"$(grep -F 'Quorate:' <<<"$q_out" | tr -s ' ')\", \"$(grep -F 'Offline' <<<"$s_out" | tr -s ' ')\""
else
  fail q "$q_why"
fi

# d. reload: SIGHUP, the configuration is read again, still the same process.
cur=$(jmark)
out=$(cx timeout 60 systemctl reload hactld 2>&1); rc=$?
if [ "$rc" -ne 0 ]; then
  props; fail d "systemctl reload hactld: exit $rc: $out; $(show_props)"
elif ! jwait "$cur" "configuration reloaded" -u hactld; then
  props; fail d "no \"configuration reloaded\" in the journal after reload; $(show_props)"
elif ! wait_props 15 '[ "${P[ActiveState]}/${P[SubState]}" = active/running ]' || [ "${P[MainPID]}" != "$MAINPID" ]; then
  fail d "after reload: expected active/running, MainPID=$MAINPID; $(show_props)"
else
  pass d "systemctl reload hactld: \"configuration reloaded\", still active/running, MainPID=$MAINPID"
fi

# d2. a reload with a broken file keeps the running configuration.
put "$CONF" 0644 < "$RUNDIR/bad.toml" || die "cannot write $CONF"
cur=$(jmark)
out=$(cx timeout 60 systemctl reload hactld 2>&1); rc=$?
if [ "$rc" -eq 0 ] && jwait "$cur" "reload refused" -u hactld &&
   wait_props 15 '[ "${P[ActiveState]}/${P[SubState]}" = active/running ]' && [ "${P[MainPID]}" = "$MAINPID" ]; then
  pass d2 "reload with a broken $CONF: \"reload refused\", still active/running, MainPID=$MAINPID"
else
  props; fail d2 "reload with a broken $CONF: exit $rc $out; $(show_props); journal: $(jsince "$cur" -u hactld | tr '\n' '|' | cut -c1-300)"
fi
put "$CONF" 0644 < "$RUNDIR/good.toml" || die "cannot write $CONF"

# e. stop: SIGTERM, clean exit 0.
cur=$(jmark)
out=$(cx timeout "$STOP_TIMEOUT_S" systemctl stop hactld 2>&1); rc=$?
props
if [ "$rc" -eq 0 ] && [ "${P[ActiveState]}" = inactive ] && [ "${P[SubState]}" = dead ] &&
   [ "${P[ExecMainStatus]}" = 0 ] && [ "${P[Result]}" = success ]; then
  if jwait "$cur" "stopped" -u hactld; then
    pass e "systemctl stop hactld: inactive/dead, ExecMainStatus=0, Result=success, \"stopped\" logged"
  else
    fail e "stopped cleanly but hactld's \"stopped\" message is not in journalctl -u hactld"
  fi
else
  fail e "systemctl stop hactld: exit $rc $out; expected inactive/dead, ExecMainStatus=0; $(show_props)"
fi

# q2. hactld stopped: hactl says so and exits 3.
out=$(cx hactl quorum 2>&1); rc=$?
if [ "$rc" -eq 3 ] && grep -qF "hactld is not running on this node" <<<"$out" &&
   grep -qF "systemctl start hactld" <<<"$out"; then
  pass q2 "hactld stopped: hactl quorum exits 3: \"$out\""
else
  fail q2 "hactld stopped: hactl quorum: exit $rc (expected 3): $out"
fi

# Starts hactld expecting a refusal (exit 78, not restarted) and checks
# `journalctl -u hactld` for TEXT: refused NAME TEXT DESCRIPTION
refused() {
  local name=$1 text=$2 what=$3 cur rc out n0 settle_s
  cx systemctl reset-failed hactld 2>/dev/null
  props
  # shellcheck disable=SC2034 # n0 is read by the wait_props expression
  n0=${P[NRestarts]:-0}
  cur=$(jmark)
  out=$(cx timeout "$START_TIMEOUT_S" systemctl start hactld 2>&1); rc=$?
  props
  if [ "$rc" -eq 0 ]; then
    fail "$name" "$what: systemctl start hactld succeeded; $(show_props)"
    cx systemctl stop hactld
    return
  fi
  if [ "${P[ExecMainStatus]}" != 78 ]; then
    fail "$name" "$what: start failed (exit $rc) but ExecMainStatus=${P[ExecMainStatus]}, expected 78; $(show_props)"
    cx systemctl stop hactld
    return
  fi
  # Not restarted: stays failed past RestartSec (2s in the unit) twice over.
  settle_s=5
  if wait_props "$settle_s" '[ "${P[ActiveState]}" != failed ] || [ "${P[NRestarts]}" != "$n0" ]'; then
    fail "$name" "$what: exit 78 but systemd restarted it: $(show_props)"
    cx systemctl stop hactld
    return
  fi
  if ! jwait "$cur" "$text" -u hactld; then
    local by_id all with_unit
    by_id=$(jsince "$cur" -t hactld | grep -cF -- "$text")
    all=$(jsince "$cur" -t hactld -o verbose | grep -c '^    SYSLOG_IDENTIFIER=hactld$')
    with_unit=$(jsince "$cur" -t hactld -o verbose | grep -c '^    _SYSTEMD_UNIT=hactld.service$')
    fail "$name" "$what: exit 78, not restarted, but journalctl -u hactld (and so systemctl status) lacks \"$text\"; journalctl -t hactld has it $by_id time(s); only $with_unit of hactld's $all entries carry _SYSTEMD_UNIT (journald could not attribute them to the unit: hactld had exited before journald read them); -u shows: $(jsince "$cur" -u hactld | tr '\n' '|' | cut -c1-300)"
    return
  fi
  pass "$name" "$what: start fails, ExecMainStatus=78, ActiveState=${P[ActiveState]}, NRestarts=${P[NRestarts]} after ${settle_s}s; journal: \"$(jsince "$cur" -u hactld | grep -F -- "$text" | head -1 | cut -c1-120)\""
}

# f. unknown key: refuses, 78, no restart, file:line:column in the journal.
put "$CONF" 0644 < "$RUNDIR/bad.toml" || die "cannot write $CONF"
refused f "$BAD_WHERE: error: cluster.bogus_key" "unknown key at $BAD_WHERE"
put "$CONF" 0644 < "$RUNDIR/good.toml" || die "cannot write $CONF"

# g. key readable by others: refuses, 78, the journal says it is the mode.
cx chmod 0644 "$KEY"
refused g "$KEY: the key file has mode 0644" "key file mode 0644"
cx chmod 0400 "$KEY"

# g2. put right, it starts again (the refusal was about the mode alone).
cx systemctl reset-failed hactld 2>/dev/null
out=$(cx timeout "$START_TIMEOUT_S" systemctl start hactld 2>&1); rc=$?
props
if [ "$rc" -eq 0 ] && [ "${P[ActiveState]}/${P[SubState]}" = active/running ]; then
  pass g2 "key back to 0400: starts again, MainPID=${P[MainPID]}"
else
  fail g2 "key back to 0400: systemctl start exit $rc $out; $(show_props)"
fi
cx timeout "$STOP_TIMEOUT_S" systemctl stop hactld >/dev/null 2>&1

phase_done "checks"
[ "$FAILED" -eq 0 ]
