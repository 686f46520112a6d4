#!/usr/bin/env bash
# The main job, on one machine: a 3-node hactl web cluster on systemd-nspawn
# containers running real systemd. Run as root on Debian 12:
#
#   scripts/demo.sh              build, boot node1 node2 node4, start the web
#                                group (VIP + shared disk + nginx), show a
#                                failover, and leave the cluster running
#   scripts/demo.sh status       hactl status (on the first live node)
#   scripts/demo.sh hactl NODE ARGS...   hactl ARGS inside NODE
#   scripts/demo.sh curl         fetch http://10.77.0.100/ from the client
#   scripts/demo.sh crash NODE   kill NODE's container (SIGKILL, port down)
#   scripts/demo.sh revive NODE  boot NODE again and start hactld
#   scripts/demo.sh shell NODE   a shell inside NODE (systemctl, journalctl)
#   scripts/demo.sh stop         tear everything down
#
# The image (Debian bookworm + systemd + nginx, about 165 MB) is built once
# by vm-tests/nspawn/rootfs.sh and cached in /var/cache/hactl-test. The
# machinery is vm-tests/nspawn/lib/webcluster.sh, shared with the
# end-to-end test vm-tests/nspawn/web-cluster.sh.
#
# HACTL_BIN_DIR=DIR takes hactld and hactl from DIR instead of building.
#
# FENCING IS OFF in this demo: fencing_disabled_i_understand_split_brain = true, so a node that
# disappears is taken as cleanly down.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
CACHE=${HACTL_CACHE:-/var/cache/hactl-test}

WC_PREFIX=hdemo
WC_DIR=$CACHE/runs/hactl-demo
# shellcheck source=vm-tests/nspawn/lib/webcluster.sh
source vm-tests/nspawn/lib/webcluster.sh
ALL_NODES=(node1:1 node2:2 node4:4)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo.sh: $*" >&2; exit 1; }
secs() { printf '%d.%02d s' $(($1 / 1000)) $((($1 % 1000) / 10)); }
node_id() { local n; for n in "${ALL_NODES[@]}"; do [ "${n%%:*}" = "$1" ] && { echo "${n#*:}"; return 0; }; done; return 1; }
alive() { kill -0 "$(cat "$WC_DIR/$1/cpid" 2>/dev/null)" 2>/dev/null; }
first_alive() { local n; for n in "${ALL_NODES[@]}"; do alive "${n%%:*}" && { echo "${n%%:*}"; return 0; }; done; return 1; }
running() { [ -f "$WC_DIR/env" ]; }
load_env() {
  running || die "no demo cluster is running (start it with scripts/demo.sh)"
  # shellcheck disable=SC1091
  source "$WC_DIR/env"
}
need_node() {
  node_id "${1:-}" >/dev/null || die "unknown node '${1:-}': the nodes are node1, node2, node4"
}

[ "$(id -u)" = 0 ] || die "must run as root (systemd-nspawn, network namespaces, a loop device)"

case ${1:-start} in
  start) ;;
  stop)
    [ -d "$WC_DIR" ] || { echo "demo.sh: nothing to stop"; exit 0; }
    exec 3>&2 2>/dev/null; wc_cleanup; exec 2>&3 3>&-
    echo "demo.sh: the demo cluster is gone (containers, namespaces, loop device, $WC_DIR)"
    exit 0 ;;
  status) load_env; n=$(first_alive) || die "no node is running"; wc_hactl "$n" status; exit ;;
  hactl) load_env; need_node "${2:-}"; alive "$2" || die "$2 is not running (scripts/demo.sh revive $2)"
    n=$2; shift 2; wc_cx "$n" hactl "$@"; exit ;;
  curl) load_env; wc_http || { echo "(http://$WC_VIP/ does not answer)"; exit 1; }; exit ;;
  shell) load_env; need_node "${2:-}"; alive "$2" || die "$2 is not running"
    nsenter -t "$(wc_cpid "$2")" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM="${TERM:-xterm}" \
      HOME=/root LANG=C.UTF-8 /bin/bash -l; exit ;;
  crash) load_env; need_node "${2:-}"; alive "$2" || die "$2 is not running"
    t0=$(wc_now_ms); before=$(wc_served_by); wc_node_kill "$2"
    echo "killed $2 (SIGKILL of its container, switch port down); the page was served by $before"
    if [ "$before" = "$2" ]; then
      n=$(first_alive) || exit 0
      # Wait for another node (or, without quorum, nothing) to answer.
      deadline=$(( t0 + 30000 ))
      while got=$(wc_served_by); [ "$got" = none ] && [ "$(wc_now_ms)" -lt "$deadline" ]; do sleep 0.05; done
      echo "http://$WC_VIP/ is now served by $got, $(secs $(( $(wc_now_ms) - t0 ))) after the kill"
    fi
    wc_node_reap "$2"
    exit ;;
  revive) load_env; need_node "${2:-}"; alive "$2" && die "$2 is running"
    wc_node_remove "$2"
    if ! { wc_node_boot "$2" "$(node_id "$2")" "$WC_DIR/web.toml" && wc_node_wait_boot "$2" 120 &&
      wc_start_hactld "$2"; }; then die "could not boot $2 (see $WC_DIR/$2/console.log)"; fi
    echo "$2 is back: systemd running, hactld started (scripts/demo.sh status)"; exit ;;
  *) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac

# ---------------------------------------------------------------- start
running && die "a demo cluster is already running: scripts/demo.sh status, or scripts/demo.sh stop first"
[ -d "$WC_DIR" ] && { exec 3>&2 2>/dev/null; wc_cleanup; exec 2>&3 3>&-; }

scripts/setup.sh || die "scripts/setup.sh failed"
if [ -n "${HACTL_BIN_DIR:-}" ]; then
  WC_BIN=$(realpath "$HACTL_BIN_DIR")   # hactld and hactl built elsewhere
else
  step "build (cargo build --release)"
  cargo build --release --quiet --bins || die "cargo build --release failed"
  WC_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release
fi
step "the container image: Debian bookworm + systemd + nginx (built once, then cached)"
WC_ROOTFS=$(vm-tests/nspawn/rootfs.sh web) || die "vm-tests/nspawn/rootfs.sh web failed"
echo "  $WC_ROOTFS"

{ mkdir -p "$WC_DIR" && : > "$WC_DIR/created"; } || die "cannot create $WC_DIR"
failed() { echo; echo "demo.sh: $* — tearing down"; exec 3>&2 2>/dev/null; wc_cleanup; exec 2>&3 3>&-; exit 1; }
trap 'failed interrupted' INT TERM

step "network: switch $WC_PREFIX-sw (bridge), client $WC_PREFIX-client $WC_CLIENT; the shared disk on a loop device"
wc_net_up || failed "network namespaces"
wc_disk_up || failed "the shared disk"
"$WC_BIN/hactl" keygen --output "$WC_DIR/authkey" >/dev/null || failed "hactl keygen"
echo "  $WC_DIR/disk.img (ext4, holds the web page) on $WC_LOOP, given to every container"
wc_config 100 false "${ALL_NODES[@]}" > "$WC_DIR/web.toml"
cat > "$WC_DIR/env" <<EOF
WC_BIN=$WC_BIN
WC_ROOTFS=$WC_ROOTFS
WC_LOOP=$WC_LOOP
EOF

step "configuration: /etc/hactl/cluster.toml on every node (a copy: $WC_DIR/web.toml)"
sed -n '/^\[\[resource\]\]/,$p' "$WC_DIR/web.toml" | grep -vE '^(name = "monitor"|interval|timeout|\[\[resource.op\]\])' | sed 's/^/  /'
"$WC_BIN/hactl" config check "$WC_DIR/web.toml" 2>&1 | grep -E 'OK:|warning' | sed 's/^/  /'

step "boot three containers: node1 node2 node4 (real systemd, the shipped hactld.service)"
for n in "${ALL_NODES[@]}"; do wc_node_boot "${n%%:*}" "${n#*:}" "$WC_DIR/web.toml" || failed "booting ${n%%:*}"; done
for n in "${ALL_NODES[@]}"; do wc_node_wait_boot "${n%%:*}" 120 || failed "booting ${n%%:*}"; done
t0=$(wc_now_ms)
wc_start_hactld node1 node2 node4 || failed "systemctl start hactld"
wc_wait_served node2 60 || failed "the web group did not start on node2 (last answer: $WC_LAST)"
echo "  systemctl start hactld on all three; http://$WC_VIP/ served by node2 $(secs $(( $(wc_now_ms) - t0 ))) later"

step "hactl status (inside node1)"
wc_hactl node1 status
step "the page, fetched from the client namespace: curl http://$WC_VIP/"
echo "  $(wc_http)"

step "failover: crash node2, the node serving the page (SIGKILL of its container, switch port down)"
echo "  (fencing is OFF in this demo: fencing_disabled_i_understand_split_brain = true)"
t0=$(wc_now_ms)
wc_node_kill node2
wc_wait_served node1 60 || failed "web did not move to node1 (last answer: $WC_LAST)"
took=$(( $(wc_now_ms) - t0 ))
wc_node_reap node2
echo "  $(wc_http)"
printf '  \033[1mhttp://%s/ served by node1 %s after the crash\033[0m\n' "$WC_VIP" "$(secs "$took")"
step "hactl status (inside node1)"
wc_hactl node1 status

trap - INT TERM
cat <<EOF

$(printf '\033[1m')The cluster is running (node1 and node4; node2 crashed).$(printf '\033[0m') Try:
  scripts/demo.sh revive node2          boot node2 again: it rejoins; the
                                        group stays on node1 (stickiness 100)
  scripts/demo.sh status                hactl status
  scripts/demo.sh curl                  which node serves http://$WC_VIP/
  scripts/demo.sh hactl node1 standby node1     the group moves away
  scripts/demo.sh hactl node1 online node1
  scripts/demo.sh hactl node1 migrate web node4 then: unmigrate web
  scripts/demo.sh crash node1           a node crash (node1 is the DC)
  scripts/demo.sh shell node4           systemctl status nginx, journalctl -u hactld
  scripts/demo.sh stop                  tear it all down
EOF
