#!/bin/bash
# web-bench.sh: figures of the web cluster of web-cluster.sh (issue 8, item
# 10), measured from the HTTP client's side: the time from an action to the
# first page served by the new node (the client polls http://VIP/ every
# 10 ms, each fetch with a 1 s limit; hactl migrate and standby run with
# --no-wait, so their figures are the move itself), repeated N times; then hactld's
# resident memory (VmRSS) and CPU seconds per idle minute on each node.
# Prints figures and medians; asserts nothing (a benchmark, not a test).
#
# Usage (as root): vm-tests/nspawn/web-bench.sh
#
# Environment:
#   HACTL_BENCH_N       repetitions of each measurement (default 10)
#   HACTL_BENCH_IDLE_S  length of the idle measurement in seconds (default 60)
#   HACTL_BIN_DIR       take hactld and hactl from here (default: cargo build
#                       --release; the figures are for a release build)
#   HACTL_CACHE         as for web-cluster.sh
#   HACTL_BENCH_TOTEM   extra [totem] lines for the nodes' configuration, to
#                       compare timers (e.g. $'consensus = 360\nhold = 25')
#
# FENCING IS OFF here too (no fence device configured): a crash is recovered
# as soon as the survivors have formed a new ring, without the time a fence
# device would take.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${HACTL_CACHE:-/var/cache/hactl-test}
N=${HACTL_BENCH_N:-10}
IDLE_S=${HACTL_BENCH_IDLE_S:-60}
WC_PREFIX=hwb$$
WC_DIR=$CACHE/runs/$WC_PREFIX
# shellcheck source=vm-tests/nspawn/lib/webcluster.sh
source "$HERE/lib/webcluster.sh"
NODES=(node1:1 node2:2 node4:4)
# Poll the VIP every 10 ms (each poll also runs curl).
WC_POLL_S=0.01
WC_TOTEM_EXTRA=${HACTL_BENCH_TOTEM:-}

die() { echo "web-bench.sh: $*" >&2; exit 1; }
trap 'exec 3>&2 2>/dev/null; wc_cleanup; exec 2>&3 3>&-' EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "must run as root"
case $N in ''|*[!0-9]*|0) die "HACTL_BENCH_N must be a positive number";; esac
case $IDLE_S in ''|*[!0-9]*|0) die "HACTL_BENCH_IDLE_S must be a positive number of seconds";; esac

WC_ROOTFS=$("$HERE/rootfs.sh" web) || die "rootfs.sh web failed"
if [ -n "${HACTL_BIN_DIR:-}" ]; then
  WC_BIN=$(realpath "$HACTL_BIN_DIR")
else
  (cd "$REPO" && cargo build --release --quiet --bins) || die "cargo build --release failed"
  WC_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release
fi

echo "web-bench.sh: $N repetitions, idle ${IDLE_S}s; binaries $WC_BIN; FENCING OFF (fencing_disabled_i_understand_split_brain)${WC_TOTEM_EXTRA:+; extra [totem] lines: ${WC_TOTEM_EXTRA//$'\n'/; }}"
{ mkdir -p "$WC_DIR" && : > "$WC_DIR/created"; } || die "mkdir $WC_DIR"
"$WC_BIN/hactl" keygen --output "$WC_DIR/authkey" >/dev/null || die "hactl keygen"
wc_net_up || die "network namespaces"
wc_disk_up || die "the shared disk"
# Stickiness 100: the group stays where it was moved.
wc_config 100 false "${NODES[@]}" > "$WC_DIR/web.toml"

alive() { kill -0 "$(cat "$WC_DIR/$1/cpid" 2>/dev/null)" 2>/dev/null; }
ctl_node() { local n; for n in node1 node2 node4; do alive "$n" && { echo "$n"; return; }; done; }
boot() { # boot NAME ID
  wc_node_boot "$1" "$2" "$WC_DIR/web.toml" && wc_node_wait_boot "$1" 120
}
# settled: every node online and the controller idle (asked on a node).
wait_settled() {
  local deadline=$(( $(wc_now_ms) + 60000 )) j
  while [ "$(wc_now_ms)" -lt "$deadline" ]; do
    j=$(wc_hactl "$(ctl_node)" status --json 2>/dev/null)
    [ "$(jq -r '[.nodes[] | select(.online)] | length' <<<"$j" 2>/dev/null)" = 3 ] &&
      [ "$(jq -r '.controller.idle' <<<"$j" 2>/dev/null)" = true ] && return 0
    sleep 0.2
  done
  return 1
}
# wait_moved FROM SECONDS: until a node other than FROM serves the page.
wait_moved() {
  local deadline=$(( $(wc_now_ms) + $2 * 1000 ))
  while [ "$(wc_now_ms)" -lt "$deadline" ]; do
    WC_LAST=$(wc_served_by)
    case $WC_LAST in node*) [ "$WC_LAST" != "$1" ] && return 0 ;; esac
    sleep "$WC_POLL_S"
  done
  return 1
}
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) { print "-"; exit } m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%d", m }'; }
report() { # report NAME FILE
  local v
  v=$(tr '\n' ' ' < "$2")
  printf '%-34s median %5s ms   min %5s   max %5s   (n=%d: %s)\n' "$1" "$(median < "$2")" \
    "$(sort -n "$2" | head -1)" "$(sort -n "$2" | tail -1)" "$(wc -l < "$2")" "$v"
}

for n in "${NODES[@]}"; do boot "${n%%:*}" "${n#*:}" || die "booting ${n%%:*}"; done
wc_start_hactld node1 node2 node4 || die "systemctl start hactld"
wc_wait_served node2 60 || die "web did not start on node2 (last: $WC_LAST)"
wait_settled || die "the cluster did not settle"

: > "$WC_DIR/migrate"; : > "$WC_DIR/standby"; : > "$WC_DIR/crash"

# migrate: to each of the other nodes in turn. hactl returns at once
# (--no-wait): the figure is the move as the client sees it, not hactl's
# own wait for the cluster to settle (it polls every 100 ms); the next
# round starts once the cluster settled (not timed).
for i in $(seq "$N"); do
  h=$(wc_served_by)
  for t in node1 node4 node2; do [ "$t" != "$h" ] && break; done
  t0=$(wc_now_ms)
  wc_hactl "$(ctl_node)" migrate --no-wait web "$t" >/dev/null 2>&1 || die "hactl migrate web $t failed"
  wc_wait_served "$t" 60 || die "migrate web $t: served by $WC_LAST"
  echo $(( $(wc_now_ms) - t0 )) >> "$WC_DIR/migrate"
  wait_settled || die "the cluster did not settle after migrate web $t"
done
wc_hactl "$(ctl_node)" unmigrate web >/dev/null 2>&1
wait_settled

# standby of the node that serves; then online again (not timed).
for i in $(seq "$N"); do
  h=$(wc_served_by)
  t0=$(wc_now_ms)
  wc_hactl "$(ctl_node)" standby --no-wait "$h" >/dev/null 2>&1 || die "hactl standby $h failed"
  wait_moved "$h" 60 || die "standby $h: served by $WC_LAST"
  echo $(( $(wc_now_ms) - t0 )) >> "$WC_DIR/standby"
  wait_settled || die "the cluster did not settle after standby $h"
  wc_hactl "$(ctl_node)" online "$h" >/dev/null 2>&1 || die "hactl online $h failed"
done
wait_settled

# crash: SIGKILL of the serving node's container; then it boots again and
# rejoins (not timed).
for i in $(seq "$N"); do
  h=$(wc_served_by)
  case $h in node*) ;; *) die "nothing serves before crash $i ($h)";; esac
  t0=$(wc_now_ms)
  wc_node_kill "$h"
  wait_moved "$h" 60 || die "crash of $h: served by $WC_LAST"
  echo $(( $(wc_now_ms) - t0 )) >> "$WC_DIR/crash"
  wc_node_remove "$h"
  for n in "${NODES[@]}"; do [ "${n%%:*}" = "$h" ] && { boot "$h" "${n#*:}" || die "booting $h again"; }; done
  wc_start_hactld "$h" || die "systemctl start hactld on $h again"
  wait_settled || die "the cluster did not settle after $h rejoined"
done

echo
echo "Time from the action to the first page served by the new node (client polls every ${WC_POLL_S} s):"
report "SIGKILL of the serving container" "$WC_DIR/crash"
report "hactl migrate web NODE" "$WC_DIR/migrate"
report "hactl standby NODE (the server)" "$WC_DIR/standby"

# Idle: the cluster settled, nothing happens for IDLE_S seconds.
wait_settled
hz=$(getconf CLK_TCK)
declare -A PID0 T0
for n in node1 node2 node4; do
  PID0[$n]=$(wc_cx "$n" systemctl show -p MainPID --value hactld)
  T0[$n]=$(wc_cx "$n" cat "/proc/${PID0[$n]}/stat" | awk '{ print $14 + $15 }')
done
sleep "$IDLE_S"
echo
echo "hactld at rest (${IDLE_S} s idle; the recurring monitors of the group run every 5 s on the node that holds it: $(wc_served_by)):"
for n in node1 node2 node4; do
  pid=$(wc_cx "$n" systemctl show -p MainPID --value hactld)
  [ "$pid" = "${PID0[$n]}" ] || { echo "  $n: hactld restarted during the idle measurement"; continue; }
  t1=$(wc_cx "$n" cat "/proc/$pid/stat" | awk '{ print $14 + $15 }')
  # shellcheck disable=SC2016 # awk's $2
  rss=$(wc_cx "$n" awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
  awk -v n="$n" -v d=$((t1 - T0[$n])) -v hz="$hz" -v s="$IDLE_S" -v rss="$rss" 'BEGIN {
    printf "  %s: VmRSS %.1f MiB, CPU %.3f s per idle minute\n", n, rss / 1024, d / hz * 60 / s }'
done
echo
echo "What hactl adds to a Debian image (the two binaries, as built: $WC_BIN):"
for b in hactld hactl; do
  printf '  %-7s %6.1f MiB\n' "$b" "$(stat -c %s "$WC_BIN/$b" | awk '{ print $1 / 1048576 }')"
done
echo "  plus units/hactld.service and conf/dbus/org.hactl.Cluster1.conf"
