#!/usr/bin/env bash
# Demo part 20: netobs attach. A process alone in its own network
# namespace (unshare -n sleep) gets a TAP device from the host; traffic
# made inside is read from outside, then a pcap is replayed into it.
#
#   host                         target netns (unshare -n sleep, PID $pid)
#   netobs attach ──fd────────►  ${DEMO_PREFIX}t0 (tap, 10.20.0.1/24)
#                                ping 10.20.0.2 → ARP, then ICMP
source "$(dirname "$0")/lib.sh"
section "attach: a TAP device inside a process's namespace, read from the host"
dev=${DEMO_PREFIX}t0
tmp=$(mktemp -d)
on_exit "rm -rf $tmp"
unshare -n sleep 120 &
pid=$!
on_exit "kill $pid"
until [ "$(readlink /proc/$pid/ns/net)" != "$(readlink /proc/self/ns/net)" ]; do sleep 0.01; done
echo "target: PID $pid in $(readlink /proc/$pid/ns/net); its interfaces:"
nsenter -t "$pid" -n ip -br link

# Frames go to stdout, the counts to stderr; SIGINT stops it.
"$NETOBS" attach /proc/$pid/ns/net --tap --name "$dev" --addr 10.20.0.1/24 >"$tmp/out.txt" 2>"$tmp/err.txt" &
nb=$!
on_exit "kill $nb"
until nsenter -t "$pid" -n ip link show "$dev" >/dev/null 2>&1; do sleep 0.01; done
show nsenter -t "$pid" -n ip -br addr show dev "$dev"
echo "host side has no $dev: $(ip link show "$dev" 2>&1 | head -1)"
# A neighbour with a static entry, so ICMP leaves at once; 10.20.0.3 has
# none, so the namespace ARPs for it.
# (quiet the IPv6 autoconfiguration chatter first)
nsenter -t "$pid" -n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
nsenter -t "$pid" -n ip neigh add 10.20.0.2 lladdr 02:20:00:00:00:02 dev "$dev"
show nsenter -t "$pid" -n ping -c 1 -W 1 10.20.0.3 >/dev/null || true
show nsenter -t "$pid" -n ping -c 3 -i 0.2 -W 1 10.20.0.2 >/dev/null || true
sleep 0.2; kill -INT "$nb"; wait "$nb" || true
echo "netobs printed (one line per frame the namespace sent through $dev):"
cat "$tmp/out.txt"
cat "$tmp/err.txt"
echo "after exit: $(nsenter -t "$pid" -n ip link show "$dev" 2>&1 | head -1)"

section "attach --mirror: see a veth's traffic; -w pcap read by tshark"
# The target's veth leads to a peer namespace, ${DEMO_PREFIX}p, at 10.21.0.2.
veth=${DEMO_PREFIX}v0
peer=${DEMO_PREFIX}p
ip netns add "$peer"
on_exit "ip netns del $peer"
ip link add "$veth" netns "$pid" type veth peer name "${veth}p" netns "$peer"
nsenter -t "$pid" -n sh -c "ip addr add 10.21.0.1/24 dev $veth; ip link set $veth up"
ip -n "$peer" addr add 10.21.0.2/24 dev "${veth}p"; ip -n "$peer" link set "${veth}p" up
"$NETOBS" attach "$pid" --tap --name "$dev" --mirror "$veth" -w "$tmp/m.pcap" 2>"$tmp/err.txt" &
nb=$!
until nsenter -t "$pid" -n tc filter show dev "$veth" egress 2>/dev/null | grep -q mirred; do sleep 0.01; done
echo "tc in the target: $(nsenter -t "$pid" -n tc filter show dev "$veth" ingress | grep -m1 -o 'mirred.*')"
show ip netns exec "$peer" ping -c 2 -i 0.2 10.21.0.1 >/dev/null
kill -INT "$nb"; wait "$nb" || true
cat "$tmp/err.txt"
show tshark -r "$tmp/m.pcap" -n -Y "arp || icmp" 2>/dev/null
echo "tc on $veth after exit: $(nsenter -t "$pid" -n tc qdisc show dev "$veth" | grep -c clsact || true) clsact qdisc(s)"

section "attach --inject: replay that pcap into the namespace, tcpdump inside sees it"
nsenter -t "$pid" -n tcpdump -i any -nn -l -c 4 icmp >"$tmp/td.txt" 2>&1 &
td=$!
on_exit "kill $td"
until grep -q listening "$tmp/td.txt"; do sleep 0.01; done
show "$NETOBS" attach "$pid" --tap --name "$dev" --inject "$tmp/m.pcap" --inject-only
wait "$td" || true
cat "$tmp/td.txt"
echo "left in the target: $(nsenter -t "$pid" -n ip -o link show type tun | wc -l) TUN/TAP devices"
