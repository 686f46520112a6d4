#!/usr/bin/env bash
# The main job, on one machine: a 3-node hactl cluster in network
# namespaces. Run as root on Debian 12:   scripts/demo.sh
#
# Today it shows what exists: the cluster configuration checked, the key
# made, three hactld daemons starting on their own "hosts" (validating the
# configuration, finding their node, checking the key, reporting status),
# one node crashing and the others carrying on. Membership, quorum and the
# failover of the web group arrive with the totem, quorum, scheduler and
# controller work; this script grows with them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/netns.sh

prefix=hactldemo
work=$(mktemp -d /tmp/hactldemo.XXXXXX)
pids=()
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
for i in 1 2 3; do
  # The node is found from the namespace's address (no --node needed).
  ip netns exec "$prefix-node$i" $bin/hactld --config "$work/cluster.toml" > "$work/node$i.log" 2>&1 &
  pids+=($!)
done
sleep 2
for i in 1 2 3; do sed "s/^/  node$i | /" "$work/node$i.log"; done

step "crash node2 (SIGKILL) and cut its network port"
kill -9 "${pids[1]}"
{ wait "${pids[1]}"; } 2>/dev/null || true
netns_cut "$prefix" node2
sleep 1
for i in 1 3; do
  if kill -0 "${pids[$((i-1))]}" 2>/dev/null; then echo "  node$i: hactld still running"; else echo "  node$i: hactld DIED"; exit 1; fi
done
echo "  (failover of 'site' to the next node comes with membership and the controller)"

step "stop the survivors (SIGTERM: clean stop)"
for i in 0 2; do kill "${pids[$i]}"; wait "${pids[$i]}" || true; done
for i in 1 3; do tail -n 1 "$work/node$i.log" | sed "s/^/  node$i | /"; done
