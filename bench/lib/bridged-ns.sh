# Sourced by bench scripts: N namespaces named ${P}1..${P}N, each with a
# veth pair (eth0) to a port of bridge br0 in namespace ${P}br, made in
# two ip batches; and their removal (by prefix, also on failure).
# Needs P, N and work (a scratch directory) set.

bridged_ns_cleanup() {
  ip netns list | awk -v p="$P" 'index($1, p) == 1 { print "netns del " $1 }' > "$work/del"
  [ -s "$work/del" ] && ip -force -batch "$work/del" 2>/dev/null || true
}

bridged_ns_make() {
  local br=${P}br i
  {
    echo "netns add $br"
    for i in $(seq 1 "$N"); do echo "netns add ${P}$i"; done
  } > "$work/add"
  ip -batch "$work/add"
  {
    echo "link add br0 type bridge"
    echo "link set br0 up"
    for i in $(seq 1 "$N"); do
      echo "link add p$i type veth peer name eth0 netns ${P}$i"
      echo "link set p$i master br0 up"
    done
  } > "$work/links"
  ip -n "$br" -batch "$work/links"
}
