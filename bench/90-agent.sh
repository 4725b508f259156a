#!/usr/bin/env bash
# Benchmark: a capture through `netobs agent` (gRPC over loopback TCP into
# the client's pcapng) vs a local `netobs capture -w`, on the same trafgen
# flood over a veth into a namespace (as bench/30-capture.sh), one after
# the other in the same run: FRAMES (default 2,000,000) 64-byte frames.
# Reports for each: captured, dropped by the kernel, dropped by the agent,
# CPU seconds (user+sys; agent and client added), wall seconds from the
# start of the flood until the capture has exited (SIGINT sent as soon as
# trafgen is done: what was still queued is drained first), peak RSS of the
# agent and of the client; and the ratios agent/local.
#
# The same run also measures the floor of any design that moves the packets
# through a socket: a local capture to /dev/null (reading the ring and
# encoding the blocks, no file written) plus bench/sockfloor moving the local
# capture's file over loopback TCP into a file (the least a sender and a
# receiver that writes can spend, nothing done per packet), at the pace the
# capture got it (spread over the local capture's wall time) and beside the
# same flood, as the agent and its client move it. floor/local is the best
# ratio such a design can reach on this machine; agent/floor says how far
# netobs is from it. The agent alone against the local capture is what a
# node pays when the client runs elsewhere. Needs root, trafgen, GNU time, go.
set -euo pipefail
cd "$(dirname "$0")/.."
NETOBS=${NETOBS:-$PWD/bin/netobs}
FRAMES=${FRAMES:-2000000}
PORT=${PORT:-17901}
# The agent runs with the GOMAXPROCS its DaemonSet gives it (AGENT_GOMAXPROCS
# to change; empty: Go's default).
AGENT_GOMAXPROCS=${AGENT_GOMAXPROCS-$(awk '/name: GOMAXPROCS/{getline; gsub(/[^0-9]/,""); print; exit}' deploy/kubernetes/daemonset.yaml)}
P=ba$$
TMP=$(mktemp -d "${BENCH_DIR:-/dev/shm}/netobs-bench.XXXXXX")
cleanup() {
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P" || true); do ip netns del "$ns" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
for t in trafgen /usr/bin/time go; do command -v "$t" >/dev/null || { echo "bench: needs $t (make deps)" >&2; exit 1; }; done
[ -x "$NETOBS" ] || { echo "bench: build netobs first (make build)" >&2; exit 1; }

mkns() { ip netns add "$1"; ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; ip -n "$1" link set lo up; }
mkns "$P-s"; mkns "$P-r"
ip link add s0 netns "$P-s" type veth peer name eth0 netns "$P-r"
ip -n "$P-s" link set s0 up; ip -n "$P-r" link set eth0 up
frame="{ eth(da=02:00:00:00:00:01, sa=02:00:00:00:00:02, type=0x0800), ipv4(saddr=10.99.0.1, daddr=10.99.0.2, ttl=64), udp(sport=4000, dport=5000), fill(0x61, 22) }"

timed() { local out=$1; shift; /usr/bin/time -o "$out.time" -f "%U %S %M" "$@" 2>"$out.err" & }
child() { pgrep -P "$1" | head -1; }
wait_ready() { for _ in $(seq 1 500); do grep -q "$2" "$1.err" 2>/dev/null && return 0; sleep 0.02; done; echo "bench: $1 did not start: $(cat "$1.err")" >&2; exit 1; }
stat() { awk -v w="$2" '$0 ~ w {print $1}' "$1.err" | tail -1; }
cpu() { awk '{printf "%.2f", $1+$2}' "$1.time"; }
rss() { awk '{printf "%.1f", $3/1024}' "$1.time"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0) print "n/a"; else printf "%.2f", a/b }'; }
now() { date +%s.%N; }

flood_and_stop() { # flood_and_stop PID: flood, SIGINT the capture, wait for it; sets wall (seconds)
  local t0 t1 c
  c=$(child "$1")
  t0=$(now)
  ip netns exec "$P-s" trafgen -o s0 -n "$FRAMES" -P 1 -C "$frame" >/dev/null 2>&1
  kill -INT "$c"
  while kill -0 "$c" 2>/dev/null; do sleep 0.01; done # time reaps it at once
  t1=$(now)
  wait "$1" || true
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
}

echo "-- local: $FRAMES frames of 64 bytes, netobs capture -w in ns $P-r"
timed "$TMP/lo" "$NETOBS" capture "$P-r" -i eth0 -w "$TMP/lo.pcapng"
lo=$!; wait_ready "$TMP/lo" "capturing on"
flood_and_stop $lo; wall_lo=$wall

echo "-- floor: local capture to /dev/null, then its file over loopback TCP (bench/sockfloor) at the flood's pace, beside the flood"
timed "$TMP/nu" "$NETOBS" capture "$P-r" -i eth0 -w /dev/null
nu=$!; wait_ready "$TMP/nu" "capturing on"
flood_and_stop $nu
go build -o "$TMP/sockfloor" ./bench/sockfloor
# Writes and reads of 2 MiB: the agent's raw stream writes up to that much at once.
"$TMP/sockfloor" recv -out "$TMP/floor.pcapng" -chunk 2097152 >"$TMP/sf.addr" 2>"$TMP/sf.recv" &
sf=$!
for _ in $(seq 1 500); do [ -s "$TMP/sf.addr" ] && break; sleep 0.01; done
ip netns exec "$P-s" trafgen -o s0 -n "$FRAMES" -P 1 -C "$frame" >/dev/null 2>&1 &
tg=$!
"$TMP/sockfloor" send -to "$(cat "$TMP/sf.addr")" -in "$TMP/lo.pcapng" -chunk 2097152 -pace "${wall_lo}s" 2>"$TMP/sf.send"
wait $sf $tg
cmp -s "$TMP/lo.pcapng" "$TMP/floor.pcapng" || { echo "bench: sockfloor did not copy the file whole" >&2; exit 1; }
floor_bytes=$(awk '{print $3}' "$TMP/sf.send")
floor_send=$(awk '{printf "%.3f", $5}' "$TMP/sf.send")
floor_recv=$(awk '{printf "%.3f", $5}' "$TMP/sf.recv")
rm -f "$TMP/lo.pcapng" "$TMP/floor.pcapng"

echo "-- agent: the same through netobs agent on 127.0.0.1:$PORT (gRPC over loopback TCP), GOMAXPROCS=${AGENT_GOMAXPROCS:-default}"
timed "$TMP/ag" env ${AGENT_GOMAXPROCS:+GOMAXPROCS=$AGENT_GOMAXPROCS} "$NETOBS" agent --socket "$TMP/a.sock" --listen "127.0.0.1:$PORT"
ag=$!; wait_ready "$TMP/ag" "listening on"
timed "$TMP/cl" "$NETOBS" capture --agent "127.0.0.1:$PORT" "$P-r" -i eth0 -w "$TMP/ag.pcapng"
cl=$!; wait_ready "$TMP/cl" "capturing on"
flood_and_stop $cl; wall_ag=$wall
kill -INT "$(child $ag)"; wait $ag || true
rm -f "$TMP/ag.pcapng"

cpu_ag=$(awk -v a="$(cpu "$TMP/ag")" -v b="$(cpu "$TMP/cl")" 'BEGIN{printf "%.2f", a+b}')
printf "%-14s %10s %10s %10s %8s %8s %9s %9s\n" run captured "kern-drop" "agent-drop" "cpu(s)" "wall(s)" "rss(MB)" "agentMB"
printf "%-14s %10s %10s %10s %8s %8s %9s %9s\n" local "$(stat "$TMP/lo" '^[0-9]+ packets? captured')" "$(stat "$TMP/lo" 'dropped by kernel')" - "$(cpu "$TMP/lo")" "$wall_lo" "$(rss "$TMP/lo")" -
printf "%-14s %10s %10s %10s %8s %8s %9s %9s\n" "via agent" "$(stat "$TMP/cl" '^[0-9]+ packets? captured')" "$(stat "$TMP/cl" 'dropped by kernel')" "$(stat "$TMP/cl" 'dropped by agent')" "$cpu_ag" "$wall_ag" "$(rss "$TMP/cl")" "$(rss "$TMP/ag")"
echo "  (via agent: cpu is agent $(cpu "$TMP/ag") + client $(cpu "$TMP/cl"))"
echo "ratio agent/local: cpu $(ratio "$cpu_ag" "$(cpu "$TMP/lo")"), wall $(ratio "$wall_ag" "$wall_lo"); the node's share (agent alone): cpu $(ratio "$(cpu "$TMP/ag")" "$(cpu "$TMP/lo")")"
floor=$(awk -v a="$(cpu "$TMP/nu")" -v b="$floor_send" -v c="$floor_recv" 'BEGIN{printf "%.2f", a+b+c}')
echo "floor: capture to /dev/null $(cpu "$TMP/nu") ($(stat "$TMP/nu" '^[0-9]+ packets? captured') captured) + send $floor_send + receive and write $floor_recv ($floor_bytes bytes over loopback TCP in ${wall_lo} s) = $floor s"
echo "ratio floor/local: cpu $(ratio "$floor" "$(cpu "$TMP/lo")"); agent/floor: cpu $(ratio "$cpu_ag" "$floor")"
source bench/lib/machine.sh; machine
