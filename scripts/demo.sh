#!/usr/bin/env bash
# The main job, on one machine: a 3-node hactl cluster in network
# namespaces. Run as root on Debian 12:   scripts/demo.sh
#
# Today it shows what exists: the cluster configuration checked, the key
# made, three hactld daemons on their own "hosts" forming one encrypted
# totem ring over UDP multicast and agreeing on quorum, one node crashing
# and the survivors forming a new ring that keeps quorum (timed), and the
# node rejoining. The failover of resources arrives with the scheduler,
# agents and controller work; this script grows with them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/netns.sh

prefix=hactldemo
work=$(mktemp -d /tmp/hactldemo.XXXXXX)
declare -A pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  netns_cleanup "$prefix"
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

scripts/setup.sh
step "build"
cargo build --release --quiet
bin=target/release

netns_cleanup "$prefix"   # leftovers of an interrupted run
step "three hosts: namespaces $prefix-node1..3 on a bridge, 10.213.0.1-3/24"
netns_switch "$prefix"
for i in 1 2 3; do netns_node "$prefix" "node$i" "10.213.0.$i/24"; done

step "configuration: $work/cluster.toml"
cat > "$work/cluster.toml" <<TOML
[cluster]
name = "demo"

[cluster.resource_defaults]
resource_stickiness = 100

[totem]
transport = "udp"
authkey = "$work/authkey"

[[totem.link]]
network = "10.213.0.0/24"

[[node]]
name = "node1"
id = 1
addresses = ["10.213.0.1"]

[[node]]
name = "node2"
id = 2
addresses = ["10.213.0.2"]

[[node]]
name = "node3"
id = 3
addresses = ["10.213.0.3"]

[[resource]]
id = "vip"
agent = "ipaddr"
params = { ip = "10.213.0.100", cidr_netmask = 24 }

[[resource]]
id = "web"
agent = "systemd:nginx"

[[group]]
id = "site"
members = ["vip", "web"]

[[location]]
resource = "site"
node = "node2"
score = 100
TOML
$bin/hactl keygen --output "$work/authkey"
$bin/hactl config check "$work/cluster.toml"

step "start hactld on each host"
start_node() {
  local i=$1
  # The node is found from the namespace's address (no --node needed).
  ip netns exec "$prefix-node$i" $bin/hactld --config "$work/cluster.toml" \
    --state-dir "$work/state-node$i" >> "$work/node$i.log" 2>&1 &
  pids[$i]=$!
}
# wait_for FILE TEXT SECONDS: until a line of FILE contains TEXT.
wait_for() {
  local deadline=$(( $(date +%s) + $3 ))
  until grep -qF -- "$2" "$1"; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "  timed out waiting for: $2 in $1"; tail -n 5 "$1"; exit 1; }
    sleep 0.05
  done
}
for i in 1 2 3; do start_node "$i"; done
for i in 1 2 3; do wait_for "$work/node$i.log" "with 3 of 3 nodes (node1, node2, node3), quorate" 20; done
for i in 1 2 3; do grep -E "(membership|quorum): node" "$work/node$i.log" | tail -n 1 | sed "s/^/  node$i | /"; done

step "crash node2 (SIGKILL) and cut its network port"
: > "$work/node1.log"; : > "$work/node3.log"
t0=$(date +%s.%N)
kill -9 "${pids[2]}"
{ wait "${pids[2]}"; } 2>/dev/null || true
netns_cut "$prefix" node2
for i in 1 3; do wait_for "$work/node$i.log" "with 2 of 3 nodes (node1, node3), quorate" 20; done
t1=$(date +%s.%N)
for i in 1 3; do grep -E "membership" "$work/node$i.log" | sed "s/^/  node$i | /"; done
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "  the survivors formed a new ring %.2f s after the crash\n", b - a }' 
echo "  (moving the resources of node2 comes with the controller)"

step "node2 comes back"
netns_heal "$prefix" node2
: > "$work/node2.log"
start_node 2
for i in 1 2 3; do wait_for "$work/node$i.log" "with 3 of 3 nodes (node1, node2, node3), quorate" 20; done
grep -E "(membership|quorum): node" "$work/node2.log" | tail -n 1 | sed "s/^/  node2 | /"

step "stop all (SIGTERM: clean stop)"
for i in 1 2 3; do kill "${pids[$i]}"; wait "${pids[$i]}" || true; done
for i in 1 2 3; do tail -n 1 "$work/node$i.log" | sed "s/^/  node$i | /"; done
