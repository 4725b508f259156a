#!/usr/bin/env bash
# Part 50: netobs events. Changes made with ip in two namespaces arrive in
# one stream, each line labelled with its namespace; --all notices a
# namespace created after it started, and one that goes away.
source "$(dirname "$0")/lib.sh"
A=${DEMO_PREFIX}ea B=${DEMO_PREFIX}eb C=${DEMO_PREFIX}ec BR=${DEMO_PREFIX}br
out=$(mktemp) ; on_exit "rm -f $out"
ip netns add "$A"; on_exit "ip netns del $A"
ip netns add "$B"; on_exit "ip netns del $B"

# waits until netobs says it is watching (stderr), so no change is missed
start_events() {
  : >"$out"
  "$NETOBS" events "$@" >"$out" 2>&1 &
  EVPID=$!
  on_exit "kill $EVPID"
  for _ in $(seq 100); do grep -q 'events: watching' "$out" && return; sleep 0.05; done
  echo "netobs events did not start:"; cat "$out"; exit 1
}
stop_events() { sleep 0.3; kill -INT "$EVPID"; wait "$EVPID" || true; }

section "one netobs, two namespaces: netobs events $A $B"
start_events "$A" "$B"
show ip -n "$A" link add "$BR" type bridge
show ip -n "$A" addr add 10.50.0.1/24 dev "$BR"
show ip -n "$A" link set "$BR" up
show ip -n "$B" link set lo up
show ip -n "$B" route add blackhole 10.99.0.0/16
show ip -n "$A" link set "$BR" down
stop_events
cat "$out"

section "--all: a namespace created after the start, and deleted"
start_events --all --kinds link --rescan 200ms
show ip netns add "$C"
on_exit "ip netns del $C"
sleep 0.3
show ip -n "$C" link set lo up
show ip netns del "$C"
sleep 0.3
stop_events
echo "(other namespaces on this machine left out)"
grep -E "$DEMO_PREFIX|^events:" "$out"

section "--initial --json: the state first, then the next change (--count 1)"
start_events --initial --json --kinds addr --count 1 "$B"
show ip -n "$B" addr add 10.51.0.1/32 dev lo
wait "$EVPID" || true
cat "$out"
