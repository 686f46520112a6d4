#!/bin/bash
# web-cluster.sh: the classic web cluster end to end on systemd-nspawn
# containers running real systemd (issue 8, item 7). Three nodes node1,
# node2, node4 run the shipped hactld.service; the group web = web-ip (a VIP,
# ipaddr) + web-fs (ext4 on a shared loop device, filesystem) + web-server
# (systemd:nginx.service) prefers node2. An HTTP client in its own network
# namespace fetches http://VIP/ after every step: the page comes from the
# shared disk and names the node that serves it.
#
# FENCING IS OFF in this test: fencing_disabled_i_understand_split_brain = true, so a node
# that disappears is taken as cleanly down (fencing has its own tests).
#
# Usage (as root): vm-tests/nspawn/web-cluster.sh
#
# Environment:
#   HACTL_CACHE    the cached rootfs and the per-run directory
#                  (default /var/cache/hactl-test)
#   HACTL_BIN_DIR  take hactld and hactl from here instead of running
#                  `cargo build --release`
#
# Each check prints PASS x: ... or FAIL x: ...; exit status 0 when all
# passed. Everything this run creates carries the prefix hwc<PID> and is
# removed on exit, also after a failure or Ctrl-C. See README.md.
set -uo pipefail

T_START=$(date +%s%N)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${HACTL_CACHE:-/var/cache/hactl-test}

WC_PREFIX=hwc$$
WC_DIR=$CACHE/runs/$WC_PREFIX
# shellcheck source=vm-tests/nspawn/lib/webcluster.sh
source "$HERE/lib/webcluster.sh"

# Limits of the waits (seconds): generous; a wait returns as soon as the
# outcome is seen, so these only matter when something is wrong.
BOOT_TIMEOUT_S=120
MOVE_TIMEOUT_S=60

PASSED=0
FAILED=0
FAILED_NAMES=()
TIMINGS=()
NODES_UP=()

since() {
  local d=$(( ($(date +%s%N) - $1) / 1000000 ))
  printf '%d.%01ds' $((d / 1000)) $(((d % 1000) / 100))
}
log() { printf '[%7s] %s\n' "$(since "$T_START")" "$*"; }
pass() { PASSED=$((PASSED + 1)); printf 'PASS %s: %s\n' "$1" "$2"; }
fail() {
  FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1")
  printf 'FAIL %s: %s\n' "$1" "$2"
}
die() { fail setup "$*"; exit 1; }
timing() { TIMINGS+=("$(printf '%-58s %6d ms' "$1" "$2")"); }
secs() { printf '%d.%02d s' $(($1 / 1000)) $((($1 % 1000) / 10)); }

cleanup() {
  local rc=$? n
  trap - EXIT INT TERM
  if [ "$FAILED" -gt 0 ]; then
    for n in "${NODES_UP[@]}"; do
      kill -0 "$(cat "$WC_DIR/$n/cpid" 2>/dev/null)" 2>/dev/null || continue
      echo "---- $n: hactl status; last journal lines of hactld and nginx ----"
      wc_cx "$n" timeout 10 hactl status 2>&1 | sed 's/^/  | /'
      wc_cx "$n" journalctl --no-pager -n 25 -o short-monotonic -u hactld -u nginx 2>&1 | sed 's/^/  | /'
    done
  fi
  exec 3>&2 2>/dev/null   # bash reports the killed background jobs
  wc_cleanup
  exec 2>&3 3>&-
  if [ ${#TIMINGS[@]} -gt 0 ]; then
    echo
    echo "Timings (from the action to the first page served as expected; polled every 50 ms):"
    printf '  %s\n' "${TIMINGS[@]}"
  fi
  echo
  echo "(fencing was OFF in this run: fencing_disabled_i_understand_split_brain = true)"
  if [ "$FAILED" -eq 0 ] && [ "$rc" -eq 0 ]; then
    echo "RESULT: all $PASSED checks passed in $(since "$T_START")"
    exit 0
  fi
  echo "RESULT: $FAILED check(s) FAILED (${FAILED_NAMES[*]:-interrupted}), $PASSED passed, in $(since "$T_START")"
  exit 1
}
trap cleanup EXIT
trap 'echo "interrupted"; FAILED_NAMES+=(interrupted); FAILED=$((FAILED + 1)); exit 1' INT TERM

# status_json NODE: hactl status --json on NODE (the controller's view).
status_json() { wc_hactl "$1" status --json 2>/dev/null; }
# fail_count NODE_ASKED RESOURCE ON_NODE: the fail count (0 when none).
fail_count() {
  status_json "$1" | jq -r --arg r "$2" --arg n "$3" \
    '[.controller.fail_counts[]? | select(.resource == $r and .node == $n) | .count] | add // 0'
}
# running_on NODE_ASKED RESOURCE: where the controller says it runs.
running_on() {
  status_json "$1" | jq -r --arg r "$2" \
    '.controller.resources[]? | select(.id == $r) | .running_on | join(",")'
}

# move NAME EXPECT DESCRIPTION -- NODE HACTL-ARGS...: runs hactl on NODE,
# then waits until the VIP serves the page from EXPECT; records the time.
move() {
  local name=$1 want=$2 what=$3 on out rc t0 took total; shift 4
  on=$1; shift
  t0=$(wc_now_ms)
  out=$(wc_hactl "$on" "$@" 2>&1); rc=$?
  took=$(( $(wc_now_ms) - t0 ))
  if [ "$rc" -ne 0 ]; then
    fail "$name" "$what: hactl $* on $on: exit $rc: $(tr '\n' '|' <<<"$out" | cut -c1-300)"
    return 1
  fi
  if ! wc_wait_served "$want" "$MOVE_TIMEOUT_S"; then
    fail "$name" "$what: hactl $* returned (exit 0, $(secs "$took")) but the VIP serves from '$WC_LAST', not $want, ${MOVE_TIMEOUT_S}s later"
    return 1
  fi
  total=$(( $(wc_now_ms) - t0 ))
  timing "hactl $* -> served by $want" "$total"
  pass "$name" "$what: hactl $* returned in $(secs "$took"); http://$WC_VIP/ served by $want $(secs "$total") after the command"
}

# stays NAME NODE SECONDS DESCRIPTION: every answer for SECONDS comes from NODE.
stays() {
  local deadline=$(( $(wc_now_ms) + $3 * 1000 )) n=0 got
  while [ "$(wc_now_ms)" -lt "$deadline" ]; do
    got=$(wc_served_by)
    # (no answer within the client's connect timeout: ask again, once)
    [ "$got" = none ] && got=$(wc_served_by)
    [ "$got" = "$2" ] || { fail "$1" "$4: served by '$got' after $n answers from $2"; return 1; }
    n=$((n + 1))
    sleep 0.2
  done
  pass "$1" "$4: all $n answers in $3 s from $2"
}

# ---------------------------------------------------------------- setup

[ "$(id -u)" = 0 ] || { echo "web-cluster.sh: must run as root (systemd-nspawn, ip netns, losetup)"; exit 2; }
for c in curl jq losetup mkfs.ext4 nsenter ip; do
  command -v "$c" >/dev/null || die "$c is missing: run scripts/setup.sh"
done

cat <<'EOF'
======================================================================
 FENCING IS OFF in this test: no [[fence_device]] is configured, so a
 node that disappears is taken as cleanly down. That is only safe here
 because a killed container's processes (and mounts) are really gone.
======================================================================
EOF
log "run $WC_PREFIX"

WC_ROOTFS=$("$HERE/rootfs.sh" web) || die "rootfs.sh web failed"
log "rootfs: $WC_ROOTFS"

if [ -n "${HACTL_BIN_DIR:-}" ]; then
  WC_BIN=$(realpath "$HACTL_BIN_DIR")
else
  log "cargo build --release"
  mkdir -p "$CACHE"
  if ! (cd "$REPO" && cargo build --release --bins) > "$CACHE/cargo-build-$WC_PREFIX.log" 2>&1; then
    tail -30 "$CACHE/cargo-build-$WC_PREFIX.log"
    rm -f "$CACHE/cargo-build-$WC_PREFIX.log"
    die "cargo build --release failed"
  fi
  rm -f "$CACHE/cargo-build-$WC_PREFIX.log"
  WC_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release
fi
for b in hactld hactl; do [ -x "$WC_BIN/$b" ] || die "no $WC_BIN/$b"; done

mkdir -p "$WC_DIR" || die "mkdir $WC_DIR"
: > "$WC_DIR/created"
"$WC_BIN/hactl" keygen --output "$WC_DIR/authkey" >/dev/null || die "hactl keygen --output $WC_DIR/authkey failed"
wc_net_up || die "network namespaces $WC_PREFIX-sw / $WC_PREFIX-client"
wc_disk_up || die "the shared disk ($WC_DIR/disk.img on a loop device)"
log "shared disk: $WC_DIR/disk.img on $WC_LOOP (ext4, the page $WC_DISK_ID)"

wc_config 0 false node1:1 node2:2 node4:4 > "$WC_DIR/web.toml"
wc_config 100 false node1:1 node2:2 node4:4 > "$WC_DIR/web-sticky.toml"
out=$("$WC_BIN/hactl" config check "$WC_DIR/web.toml" 2>&1) ||
  die "hactl config check $WC_DIR/web.toml: $out"

for n in node1:1 node2:2 node4:4; do
  wc_node_boot "${n%%:*}" "${n#*:}" "$WC_DIR/web.toml" || die "booting ${n%%:*}"
  NODES_UP+=("${n%%:*}")
done
for n in node1 node2 node4; do wc_node_wait_boot "$n" "$BOOT_TIMEOUT_S" || die "booting $n"; done
log "3 containers running systemd ($(wc_cx node1 systemctl --version | head -1))"

# ---------------------------------------------------------------- checks

# start: the group starts on node2 (highest location score).
t0=$(wc_now_ms)
if ! wc_start_hactld node1 node2 node4; then
  fail start "systemctl start hactld failed on a node"
  exit 1
fi
if wc_wait_served node2 "$MOVE_TIMEOUT_S"; then
  timing "systemctl start hactld (3 nodes) -> served by node2" "$(( $(wc_now_ms) - t0 ))"
  pass start "hactld started on 3 nodes; http://$WC_VIP/ served by node2 $(secs $(( $(wc_now_ms) - t0 ))) later, from the shared disk: \"$(wc_http)\""
else
  fail start "the VIP serves from '$WC_LAST', not node2, ${MOVE_TIMEOUT_S}s after hactld started"
  exit 1
fi
# hactl status once the cluster settled.
wc_hactl node1 status --json >/dev/null 2>&1
echo "---- hactl status (node1) ----"
wc_hactl node1 status 2>&1 | sed 's/^/  | /'
ro=$(running_on node1 web-server)
if [ "$ro" = node2 ] && [ "$(status_json node1 | jq -r .controller.dc)" = node1 ] &&
   [ "$(wc_cx node2 systemctl is-active nginx)" = active ] &&
   [ "$(wc_cx node2 findmnt -n -o SOURCE /srv/www)" = "$WC_LOOP" ]; then
  pass status "hactl status --json: DC node1, web-server on node2; on node2 nginx.service is active and $WC_LOOP is mounted on /srv/www"
else
  fail status "expected DC node1, web-server on node2 with nginx active and $WC_LOOP on /srv/www; running_on='$ro'"
fi

# standby / online, without stickiness.
move standby2 node1 "node2 in standby -> node1 (next score)" -- node1 standby node2
move standby1 node4 "node1 in standby too -> node4" -- node1 standby node1
move online2 node2 "no stickiness: node2 back online -> the group returns to node2" -- node1 online node2
move online1 node2 "node1 online: nothing moves" -- node1 online node1

# migrate / unmigrate.
move migrate node1 "migrate web to node1" -- node1 migrate web node1
move unmigrate node2 "unmigrate web: back to the preferred node2 (no stickiness)" -- node1 unmigrate web

# stickiness: hactl config apply with resource_stickiness = 100.
wc_cx node1 sh -c 'cat > /etc/hactl/web-sticky.toml' < "$WC_DIR/web-sticky.toml"
out=$(wc_hactl node1 config apply /etc/hactl/web-sticky.toml 2>&1); rc=$?
if [ "$rc" -eq 0 ]; then
  pass apply "hactl config apply (resource_stickiness = 100): $(tr '\n' ' ' <<<"$out" | cut -c1-160)"
else
  fail apply "hactl config apply web-sticky.toml: exit $rc: $(tr '\n' '|' <<<"$out" | cut -c1-300)"
fi
move s-standby2 node1 "stickiness: node2 in standby -> node1" -- node1 standby node2
move s-standby1 node4 "stickiness: node1 in standby -> node4" -- node1 standby node1
move s-online2 node4 "stickiness: node2 back online -> the group stays on node4" -- node1 online node2
move s-online1 node4 "stickiness: node1 back online -> still node4" -- node1 online node1
stays s-stays node4 3 "with stickiness the group stays on node4 once node1 and node2 are online"

# nginx killed: systemd notices, hactl restarts it in place.
kill_nginx() { # kill_nginx NODE: kill -9 of nginx.service's MainPID; echoes it
  local pid
  pid=$(wc_cx "$1" systemctl show -p MainPID --value nginx)
  [ "${pid:-0}" -gt 0 ] || return 1
  # (the shell's kill: the image has no procps)
  wc_cx "$1" sh -c "kill -9 $pid" || return 1
  echo "$pid"
}
t0=$(wc_now_ms)
if old=$(kill_nginx node4); then
  deadline=$(( t0 + MOVE_TIMEOUT_S * 1000 )); new=0
  while [ "$(wc_now_ms)" -lt "$deadline" ]; do
    new=$(wc_cx node4 systemctl show -p MainPID --value nginx)
    [ "${new:-0}" -gt 0 ] && [ "$new" != "$old" ] && [ "$(wc_served_by)" = node4 ] && break
    sleep 0.05
  done
  took=$(( $(wc_now_ms) - t0 ))
  fc=$(fail_count node1 web-server node4)
  # What hactld saw: systemd's PropertiesChanged of nginx.service (the
  # recurring monitor runs only every 5 s).
  seen=$(wc_cx node4 journalctl -q --no-pager -o cat -u hactld --since="@$((t0 / 1000 - 1))" |
    grep -F "unit nginx.service failed" | grep -F "killed by signal SIGKILL" | head -1)
  if [ "${new:-0}" -gt 0 ] && [ "$new" != "$old" ] && [ "$WC_LAST" = node4 ] && [ "$fc" = 1 ] && [ -n "$seen" ]; then
    timing "kill -9 nginx -> restarted in place, served by node4" "$took"
    pass nginx-restart "kill -9 nginx (MainPID $old) on node4: restarted in place (MainPID $new), served by node4 $(secs "$took") later; fail count web-server@node4 = 1; hactld's journal: \"${seen:0:150}\""
  else
    fail nginx-restart "after kill -9 of nginx ($old) on node4: MainPID=$new, served by $WC_LAST, fail count web-server@node4=$fc (expected a new MainPID, node4, 1); hactld's journal on node4 ${seen:+has}${seen:-lacks} \"unit nginx.service failed ... killed by signal SIGKILL\""
  fi
else
  fail nginx-restart "no MainPID for nginx.service on node4"
fi

# Second failure: migration_threshold = 2 -> web-server banned from node4,
# the group moves (to node2, the highest score).
t0=$(wc_now_ms)
if kill_nginx node4 >/dev/null && wc_wait_served node2 "$MOVE_TIMEOUT_S"; then
  took=$(( $(wc_now_ms) - t0 ))
  fc=$(fail_count node1 web-server node4)
  timing "kill -9 nginx past migration_threshold -> served by node2" "$took"
  if [ "$fc" = 2 ] && [ "$(wc_cx node4 systemctl is-active nginx)" != active ]; then
    pass nginx-threshold "second kill -9 of nginx on node4 (migration_threshold = 2): the group moved, served by node2 $(secs "$took") later; fail count web-server@node4 = 2, nginx inactive on node4"
  else
    fail nginx-threshold "moved to node2 but fail count web-server@node4 = $fc (expected 2), nginx on node4: $(wc_cx node4 systemctl is-active nginx)"
  fi
else
  fail nginx-threshold "second kill -9 of nginx on node4: the VIP serves from '$WC_LAST', not node2"
fi

out=$(wc_hactl node1 cleanup web-server 2>&1); rc=$?
fcs=$(status_json node1 | jq -c '[.controller.fail_counts[]? | select(.resource == "web-server")]')
if [ "$rc" -eq 0 ] && [ "$fcs" = "[]" ] && wc_wait_served node2 5; then
  pass cleanup "hactl cleanup web-server: no fail count left (status --json: $fcs); still served by node2 (stickiness)"
else
  fail cleanup "hactl cleanup web-server: exit $rc $out; fail counts $fcs; served by $WC_LAST"
fi

# Crash of the node holding the group (node2 when every check above passed):
# the survivors recover it on the best of them (node2 > node1 > node4).
holder=$(wc_served_by)
case $holder in node1|node2|node4) ;; *) holder=node2 ;; esac
next=; for n in node2 node1 node4; do [ "$n" != "$holder" ] && { next=$n; break; }; done
last=; for n in node1 node2 node4; do [ "$n" != "$holder" ] && [ "$n" != "$next" ] && last=$n; done
echo "(fencing is OFF: the survivors take $holder as cleanly down, fencing_disabled_i_understand_split_brain = true)"
t0=$(wc_now_ms)
wc_node_kill "$holder"
if wc_wait_served "$next" "$MOVE_TIMEOUT_S"; then
  took=$(( $(wc_now_ms) - t0 ))
  timing "SIGKILL of $holder's container -> served by $next" "$took"
  pass crash "$holder's container killed (SIGKILL nspawn + PID 1, port down): $next + $last (quorate) recovered web, served by $next $(secs "$took") after the kill"
else
  fail crash "$holder killed: the VIP serves from '$WC_LAST', not $next, ${MOVE_TIMEOUT_S}s later"
fi
wc_node_reap "$holder"

# A second crash: $next alone has no quorum -> stops the group.
t0=$(wc_now_ms)
wc_node_kill "$last"
if wc_wait_served none "$MOVE_TIMEOUT_S"; then
  took=$(( $(wc_now_ms) - t0 ))
  deadline=$(( $(wc_now_ms) + MOVE_TIMEOUT_S * 1000 ))
  while :; do
    ng=$(wc_cx "$next" systemctl is-active nginx)
    mnt=$(wc_cx "$next" findmnt -n -o SOURCE /srv/www)
    vip=$(wc_cx "$next" ip -o -4 addr show dev eth0 | grep -cF " $WC_VIP/")
    [ "$ng" != active ] && [ -z "$mnt" ] && [ "$vip" = 0 ] && break
    [ "$(wc_now_ms)" -ge "$deadline" ] && break
    sleep 0.2
  done
  q=$(wc_hactl "$next" quorum 2>&1 | grep -F 'Quorate:' | tr -s ' ')
  if [ "$ng" != active ] && [ -z "$mnt" ] && [ "$vip" = 0 ]; then
    timing "SIGKILL of $last (no quorum) -> VIP stops answering" "$took"
    pass no-quorum "$last killed too: $next alone ($q) stopped web: the VIP stopped answering $(secs "$took") after the kill, nginx is $ng, /srv/www unmounted, $WC_VIP gone from eth0"
  else
    fail no-quorum "$next without quorum: nginx $ng, /srv/www on '$mnt', VIP on eth0: $vip ($q)"
  fi
else
  fail no-quorum "$last killed, $next alone: the VIP still answers ('$WC_LAST') ${MOVE_TIMEOUT_S}s later"
fi
wc_node_reap "$last"

# ---------------------------------------------------------------- two_node
log "two_node: two new containers node1 and node2"
for n in node1 node2 node4; do wc_node_remove "$n"; done
NODES_UP=()
wc_config 0 true node1:1 node2:2 > "$WC_DIR/web-2node.toml"
for n in node1:1 node2:2; do
  wc_node_boot "${n%%:*}" "${n#*:}" "$WC_DIR/web-2node.toml" || die "booting ${n%%:*} (two_node)"
  NODES_UP+=("${n%%:*}")
done
for n in node1 node2; do wc_node_wait_boot "$n" "$BOOT_TIMEOUT_S" || die "booting $n (two_node)"; done
t0=$(wc_now_ms)
if wc_start_hactld node1 node2 && wc_wait_served node2 "$MOVE_TIMEOUT_S"; then
  q=$(wc_hactl node1 quorum 2>&1 | grep -E 'Flags|Quorate' | tr -s ' ' | tr '\n' ' ')
  pass 2node-start "two_node cluster: web served by node2 $(secs $(( $(wc_now_ms) - t0 ))) after hactld started ($q)"
  t0=$(wc_now_ms)
  wc_node_kill node2
  if wc_wait_served node1 "$MOVE_TIMEOUT_S"; then
    took=$(( $(wc_now_ms) - t0 ))
    timing "two_node: SIGKILL of node2 -> served by node1" "$took"
    pass 2node-crash "two_node: node2 killed, node1 alone keeps quorum and serves web $(secs "$took") after the kill"
  else
    fail 2node-crash "two_node: node2 killed, the VIP serves from '$WC_LAST', not node1"
  fi
  wc_node_reap node2
else
  fail 2node-start "two_node: the VIP serves from '$WC_LAST', not node2"
fi

[ "$FAILED" -eq 0 ]
