#!/usr/bin/env bash
# Demo part 30: capture inside two namespaces at once, from the host, with no
# tool inside them, into one pcapng that tshark reads back.
#
#   [ns $DEMO_PREFIX-web] eth0 10.30.0.2 ====veth==== 10.30.0.1 eth0 [ns $DEMO_PREFIX-cli]
source "$(dirname "$0")/lib.sh"
WEB=$DEMO_PREFIX-web CLI=$DEMO_PREFIX-cli
OUT=$(mktemp -d /tmp/netobs-demo.XXXXXX)
on_exit "rm -rf $OUT"

section "capture: two namespaces joined by a veth"
for ns in "$WEB" "$CLI"; do
  ip netns add "$ns"; on_exit "ip netns del $ns"
  ip -n "$ns" link set lo up
done
ip link add eth0 netns "$CLI" type veth peer name eth0 netns "$WEB"
ip -n "$CLI" addr add 10.30.0.1/24 dev eth0; ip -n "$CLI" link set eth0 up
ip -n "$WEB" addr add 10.30.0.2/24 dev eth0; ip -n "$WEB" link set eth0 up
sleep 0.2; show ip -n "$WEB" -br addr

section "capture: one netobs process, both namespaces, one pcapng (filter: icmp or udp)"
"$NETOBS" capture "$WEB" "$CLI" -w "$OUT/both.pcapng" -- icmp or udp 2>"$OUT/err" &
pid=$!
on_exit "kill $pid"
until grep -q "capturing on" "$OUT/err"; do sleep 0.05; done
cat "$OUT/err"
show ip netns exec "$CLI" ping -c 3 -i 0.2 10.30.0.2
ip netns exec "$CLI" bash -c 'echo hello > /dev/udp/10.30.0.2/9999'
sleep 0.3
kill -INT $pid; wait $pid || true
cat "$OUT/err" | tail -n +2

section "capture: tshark reads the file: one interface per namespace"
show tshark -r "$OUT/both.pcapng" -T fields -e frame.number -e frame.interface_name -e _ws.col.Source -e _ws.col.Destination -e _ws.col.Info
echo
show capinfos -I "$OUT/both.pcapng"

section "capture: packet lines instead of a file (like tcpdump -n), stop after 4"
ip netns exec "$CLI" ping -c 3 -i 0.2 10.30.0.2 >/dev/null &
show "$NETOBS" capture "$WEB" -i eth0 -c 4 -- icmp
wait
