#!/usr/bin/env bash
# bench/40-forward.sh: TCP into a service bound to 127.0.0.1 inside a
# network namespace, three ways, side by side in one run:
#   direct  iperf3 client run inside the namespace (the limit)
#   netobs  iperf3 on the host -> netobs forward -> service
#   socat   iperf3 on the host -> socat TCP-LISTEN,fork EXEC:"ip netns exec NS
#           socat STDIO TCP:127.0.0.1:PORT" (the old kubelet port-forward)
# and short connections per second (connect, 1 byte back, close) the same
# three ways. Prints the figures and the ratios. Needs root, iperf3, socat.
#
#   BENCH_SECONDS=5 (iperf3 time per run), BENCH_CONN_SECONDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
T=${BENCH_SECONDS:-5}
CT=${BENCH_CONN_SECONDS:-3}
NETOBS=${NETOBS:-$PWD/bin/netobs}
NS=bench$$fw
P=$((30000 + $$ % 20000))     # host ports for this run
IPERF_PORT=5201 CONN_PORT=7000
FW=$P SOCAT=$((P + 1)) FWC=$((P + 2)) SOCATC=$((P + 3)) SOCATC0=$((P + 4))

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$tmp"
}
tmp=$(mktemp -d)
trap cleanup EXIT
go build -o "$tmp/connrate" ./bench/connrate

ip netns add "$NS"
ip -n "$NS" link set lo up
# Tens of thousands of short connections per run all take ephemeral ports
# inside the namespace (the direct client's and netobs's dials alike):
# widen the range and reuse TIME_WAIT ports there, or a later run finds
# the range exhausted and measures nothing.
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
ip netns exec "$NS" iperf3 -s -B 127.0.0.1 -p $IPERF_PORT >/dev/null 2>&1 & pids+=($!)
ip netns exec "$NS" "$tmp/connrate" -serve 127.0.0.1:$CONN_PORT & pids+=($!)
"$NETOBS" forward "$NS" $FW $IPERF_PORT 2>/dev/null & pids+=($!)
"$NETOBS" forward "$NS" $FWC $CONN_PORT 2>/dev/null & pids+=($!)
socat TCP-LISTEN:$SOCAT,bind=127.0.0.1,fork,reuseaddr EXEC:"ip netns exec $NS socat STDIO TCP\:127.0.0.1\:$IPERF_PORT" 2>/dev/null & pids+=($!)
socat TCP-LISTEN:$SOCATC,bind=127.0.0.1,fork,reuseaddr EXEC:"ip netns exec $NS socat STDIO TCP\:127.0.0.1\:$CONN_PORT" 2>/dev/null & pids+=($!)
# socat lingers 0.5 s (-t) after one side closes; -t 0 on both is the
# fastest socat can turn short connections around.
socat -t 0 TCP-LISTEN:$SOCATC0,bind=127.0.0.1,fork,reuseaddr EXEC:"ip netns exec $NS socat -t 0 STDIO TCP\:127.0.0.1\:$CONN_PORT" 2>/dev/null & pids+=($!)
# Until every listener is up (at most 5 s each).
for where in "ip netns exec $NS ss -Htln sport = :$IPERF_PORT" "ip netns exec $NS ss -Htln sport = :$CONN_PORT" \
             "ss -Htln sport = :$FW" "ss -Htln sport = :$FWC" "ss -Htln sport = :$SOCAT" \
             "ss -Htln sport = :$SOCATC" "ss -Htln sport = :$SOCATC0"; do
  for _ in $(seq 100); do $where | grep -q . && break; sleep 0.05; done
done

# gbits runs iperf3 and prints the receiver's Gbit/s.
gbits() {
  "$@" -f g -t "$T" -O 1 2>&1 | awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i+1) == "Gbits/sec") print $i }'
}
echo "iperf3, $T s each, one TCP stream into 127.0.0.1:$IPERF_PORT inside the namespace"
direct=$(gbits ip netns exec "$NS" iperf3 -c 127.0.0.1 -p $IPERF_PORT)
viafw=$(gbits iperf3 -c 127.0.0.1 -p $FW)
viasocat=$(gbits iperf3 -c 127.0.0.1 -p $SOCAT)
printf '  %-44s %8s Gbit/s\n' "direct (iperf3 inside the namespace)" "$direct" \
  "netobs forward" "$viafw" "socat + ip netns exec (kubelet's old way)" "$viasocat"
awk -v d="$direct" -v f="$viafw" -v s="$viasocat" 'BEGIN {
  printf "  netobs / socat  = %.2fx   (goal >= 2x)\n", f / s
  printf "  netobs / direct = %.0f%%\n", 100 * f / d
  printf "  socat / direct  = %.0f%%\n", 100 * s / d }'

echo "short connections (connect, 1 byte back, close), 4 in flight, $CT s each"
# connrate prints "CONN_PER_S FAILED"; failures are shown, never hidden.
rdirect=$(ip netns exec "$NS" "$tmp/connrate" -t ${CT}s 127.0.0.1:$CONN_PORT)
rfw=$("$tmp/connrate" -t ${CT}s 127.0.0.1:$FWC)
rsocat=$("$tmp/connrate" -t ${CT}s 127.0.0.1:$SOCATC)
rsocat0=$("$tmp/connrate" -t ${CT}s 127.0.0.1:$SOCATC0)
cdirect=${rdirect% *} cfw=${rfw% *} csocat=${rsocat% *} csocat0=${rsocat0% *}
printf '  %-44s %8s conn/s  (%s failed)\n' "direct (client inside the namespace)" "$cdirect" "${rdirect#* }" \
  "netobs forward" "$cfw" "${rfw#* }" "socat + ip netns exec (as is)" "$csocat" "${rsocat#* }" \
  "socat -t 0 + ip netns exec" "$csocat0" "${rsocat0#* }"
awk -v d="$cdirect" -v f="$cfw" -v s="$csocat" -v s0="$csocat0" 'BEGIN {
  printf "  netobs / socat  = %.0fx (as is), %.1fx (socat -t 0)\n", f / s, f / s0
  printf "  netobs / direct = %.0f%%\n", 100 * f / d }'
