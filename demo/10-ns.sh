#!/usr/bin/env bash
# Demo part 1: the namespace core. Two namespaces of our own: one named
# (made by netobs, used by ip), one held only by a sleeping process.
source "$(dirname "$0")/lib.sh"

section "namespaces: list, identify, compare, enter, unshare"
named=${DEMO_PREFIX}a
on_exit "$NETOBS ns del $named"
show "$NETOBS" ns add "$named"

unshare --net --uts sleep 600 &
sleeper=$!
on_exit "kill $sleeper"
# unshare execs sleep in place; wait until it is in its own namespace.
for _ in $(seq 100); do
  [ "$(readlink /proc/$sleeper/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break
  sleep 0.05
done

show "$NETOBS" ns ls --type net
show "$NETOBS" ns id "$named" "$sleeper" /proc/$sleeper/ns/uts
echo "(readlink /proc/$sleeper/ns/net says $(readlink /proc/$sleeper/ns/net))"
show "$NETOBS" ns same "$sleeper" "$named" || echo "-> exit $?: different namespaces"
show "$NETOBS" ns same --type uts "$sleeper" self || echo "-> exit $?: the sleeper has its own UTS namespace"
show "$NETOBS" ns exec --net "$named" -- ip -brief link
show ip netns exec "$named" ip -brief link
show "$NETOBS" ns exec -t "$sleeper" -- sh -c 'echo "inside: $(readlink /proc/self/ns/net), hostname $(hostname)"'
# The blog case: a new UTS namespace with its own hostname; the host's is untouched.
show "$NETOBS" ns unshare --uts --hostname netobs-demo -- hostname
echo "host's hostname is still $(hostname)"
