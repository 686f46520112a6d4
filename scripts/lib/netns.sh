# Network namespaces as cluster nodes on one machine: a "switch" namespace
# holding a bridge, and one namespace per node joined to it by a veth pair.
# Everything is named PREFIX-*, so a run deletes only what it created.
# Source this file; it needs iproute2 and root.

# netns_switch PREFIX: creates PREFIX-sw with bridge br0.
netns_switch() {
  local p=$1
  ip netns add "$p-sw"
  ip -n "$p-sw" link add br0 type bridge
  ip -n "$p-sw" link set br0 up
  ip -n "$p-sw" link set lo up
}

# netns_node PREFIX NAME ADDRESS/PREFIXLEN: creates PREFIX-NAME with eth0
# on the switch; the switch-side port is NAME (down it to cut the node off).
netns_node() {
  local p=$1 name=$2 addr=$3
  ip netns add "$p-$name"
  ip link add "${p:0:6}$name" type veth peer name "${p:0:6}${name}p"
  ip link set "${p:0:6}$name" netns "$p-$name"
  ip link set "${p:0:6}${name}p" netns "$p-sw"
  ip -n "$p-$name" link set "${p:0:6}$name" name eth0
  ip -n "$p-sw" link set "${p:0:6}${name}p" name "$name"
  ip -n "$p-sw" link set "$name" master br0 up
  ip -n "$p-$name" link set lo up
  ip -n "$p-$name" addr add "$addr" dev eth0
  ip -n "$p-$name" link set eth0 up
  # Multicast leaves through eth0.
  ip -n "$p-$name" route add 224.0.0.0/4 dev eth0
}

# netns_cut PREFIX NAME / netns_heal PREFIX NAME: partition a node.
netns_cut() { ip -n "$1-sw" link set "$2" down; }
netns_heal() { ip -n "$1-sw" link set "$2" up; }

# netns_cleanup PREFIX: kills processes in, and deletes, PREFIX-* namespaces.
netns_cleanup() {
  local p=$1 ns pid
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$p-" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}
