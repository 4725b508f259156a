#!/usr/bin/env bash
# Part 40: a service bound to 127.0.0.1 inside a namespace, reached from the
# host through `netobs forward` (TCP, UDP), a host service reached from
# inside with --reverse, and `netobs sockets` listing the namespace.
#
#   host                                   netns $NS (lo only)
#   127.0.0.1:HTTP ─── netobs forward ──►  127.0.0.1:8080  socat "hello" service
#   127.0.0.1:UDP ──── forward --udp ───►  127.0.0.1:5353  socat UDP echo
#   127.0.0.1:REV ◄─── forward --reverse ─ 127.0.0.1:9090  (client: ip netns exec)
source "$(dirname "$0")/lib.sh"
NS=${DEMO_PREFIX}fw
# Host ports vary per run so parallel runs do not collide.
P=$((20000 + $$ % 20000))
HTTP=$P UDP=$((P + 1)) REV=$((P + 2))
# wait_for [-n NS] -t|-u PORT: until something listens there (at most 5 s).
wait_for() {
  local ns=()
  if [ "$1" = -n ]; then ns=(ip netns exec "$2"); shift 2; fi
  for _ in $(seq 100); do
    "${ns[@]}" ss -Hln"${1#-}" "sport = :$2" | grep -q . && return 0
    sleep 0.05
  done
  echo "demo: nothing listens on port $2" >&2; return 1
}

section "forward: a namespace with a service only its own loopback can reach"
ip netns add "$NS"; on_exit ip netns del "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" socat TCP-LISTEN:8080,bind=127.0.0.1,fork,reuseaddr SYSTEM:'echo hello from inside the namespace' &
on_exit kill $!
ip netns exec "$NS" socat UDP-RECVFROM:5353,bind=127.0.0.1,fork EXEC:cat &
on_exit kill $!
wait_for -n "$NS" -t 8080; wait_for -n "$NS" -u 5353

section "netobs forward $NS $HTTP 8080  (host 127.0.0.1:$HTTP -> 127.0.0.1:8080 inside)"
"$NETOBS" forward "$NS" $HTTP 8080 -v &
fw=$!; on_exit kill $fw
wait_for -t $HTTP
show socat -T2 - TCP:127.0.0.1:$HTTP </dev/null

section "netobs forward --udp $NS $UDP 5353"
"$NETOBS" forward --udp "$NS" $UDP 5353 --udp-timeout 1s -v &
fwu=$!; on_exit kill $fwu
wait_for -u $UDP
echo "ping over udp" | show socat -T1 - UDP:127.0.0.1:$UDP

section "netobs forward --reverse $NS 9090 $REV  (inside 127.0.0.1:9090 -> host 127.0.0.1:$REV)"
socat TCP-LISTEN:$REV,bind=127.0.0.1,fork,reuseaddr SYSTEM:'echo hello from the host' &
on_exit kill $!
"$NETOBS" forward --reverse "$NS" 9090 $REV &
fwr=$!; on_exit kill $fwr
wait_for -t $REV; wait_for -n "$NS" -t 9090
show ip netns exec "$NS" socat -T2 - TCP:127.0.0.1:9090 </dev/null

section "netobs sockets $NS  (sock_diag from inside; owners found in /proc)"
show "$NETOBS" sockets "$NS"
show "$NETOBS" sockets "$NS" -tl --json

section "SIGINT stops forward cleanly with its totals"
kill -INT $fw $fwu $fwr
wait $fw $fwu $fwr || true
