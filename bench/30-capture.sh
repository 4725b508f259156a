#!/usr/bin/env bash
# Benchmark: netobs capture -w vs tcpdump -w, side by side on the same
# trafgen flood over a veth into a namespace.
#   1. 2,000,000 64-byte UDP frames (FRAMES to change), both capturing at
#      once, from one trafgen CPU: a flood both can keep up with, to compare
#      the CPU each spends with no drops
#   2. 500,000 1500-byte frames (FRAMES_BIG), from trafgen on every CPU
#      (TRAFGEN_CPUS, default $(nproc)): a flood neither keeps up with, so
#      the CPU is shared and what counts is how many packets each captures
#      with its share (with one trafgen CPU tcpdump drops only 1-3 % of
#      them, and both capture about the same)
#   3. 10 namespaces: one netobs writing one pcapng vs 10 tcpdump processes
# PARTS="small big multi" selects the runs; FRAMES, FRAMES_BIG, NNS the sizes.
# Reports captured, dropped by kernel, CPU seconds (user+sys) and peak RSS of
# each, and the ratios netobs/tcpdump. Part 1 then runs again with
# bench/capfloor in netobs's place (a ring read into 256 KiB writes of pcap
# records, nothing else: the least a capture can do), so floor/tcpdump is
# the best CPU ratio a capture can reach on this machine, and netobs/floor
# (from the two consecutive runs) how far netobs is from it. (Not part 2:
# under that overload the kernel's work for the flood is charged to
# whichever process runs, and capfloor, waiting in poll(2), spent more CPU
# per packet than netobs; docs/BENCHMARKS.md.) Needs root, trafgen,
# tcpdump, GNU time, go.
set -euo pipefail
cd "$(dirname "$0")/.."
NETOBS=${NETOBS:-$PWD/bin/netobs}
FRAMES=${FRAMES:-2000000}
FRAMES_BIG=${FRAMES_BIG:-500000}
NNS=${NNS:-10}
TRAFGEN_CPUS=${TRAFGEN_CPUS:-$(nproc)} # trafgen -P of the 1500-byte part
PARTS=${PARTS:-"small big multi"} # which runs to do
P=bc$$ # every name of this run starts with it
# Files go to tmpfs (BENCH_DIR to change): the run measures capturing, not
# the disk, which would make both tools drop the same way.
TMP=$(mktemp -d "${BENCH_DIR:-/dev/shm}/netobs-bench.XXXXXX")

cleanup() {
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P" || true); do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
for t in trafgen tcpdump /usr/bin/time go; do command -v "$t" >/dev/null || { echo "bench: needs $t (make deps)" >&2; exit 1; }; done
[ -x "$NETOBS" ] || { echo "bench: build netobs first (make build)" >&2; exit 1; }
go build -o "$TMP/capfloor" ./bench/capfloor

# Topology: $P-s (trafgen) --veth--> $P-r<i> (the captures).
#   [ns $P-s] s<i> ====veth==== eth0 [ns $P-r<i>]
mkns() { ip netns add "$1"; ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; ip -n "$1" link set lo up; }
mkns "$P-s"
link() { # link I: veth s<I> in the sender, eth0 in $P-r<I>
  mkns "$P-r$1"
  ip link add "s$1" netns "$P-s" type veth peer name eth0 netns "$P-r$1"
  ip -n "$P-s" link set "s$1" up; ip -n "$P-r$1" link set eth0 up
}

# Frames go to a MAC nobody has: the receiver sees them as PACKET_OTHERHOST,
# both captures get them, and IP drops them without answering.
frame() { # frame SIZE: a trafgen packet of SIZE bytes (Ethernet+IPv4+UDP)
  local pay=$(( $1 - 42 ))
  echo "{ eth(da=02:00:00:00:00:01, sa=02:00:00:00:00:02, type=0x0800), ipv4(saddr=10.99.0.1, daddr=10.99.0.2, ttl=64), udp(sport=4000, dport=5000), fill(0x61, $pay) }"
}

# timed OUT CMD...: runs CMD under GNU time (user sys maxrss in OUT.time), stderr in OUT.err.
timed() { local out=$1; shift; /usr/bin/time -o "$out.time" -f "%U %S %M" "$@" 2>"$out.err" & }
child() { pgrep -P "$1" | head -1; }
wait_ready() { for _ in $(seq 1 500); do grep -qE "$2" "$1.err" 2>/dev/null && return 0; sleep 0.02; done; echo "bench: $1 did not start: $(cat "$1.err")" >&2; exit 1; }
stat() { awk -v w="$2" '$0 ~ w {print $1}' "$1.err" | tail -1; }
cpu() { awk '{printf "%.2f", $1+$2}' "$1.time"; }
rss() { awk '{printf "%.1f", $3/1024}' "$1.time"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0) print "n/a"; else printf "%.2f", a/b }'; }
perpkt() { awk -v c="$1" -v n="$2" 'BEGIN{ if (n+0 == 0) print "n/a"; else printf "%.0f", c*1e9/n }'; } # ns of CPU per captured packet

one_run() { # one_run NAME SIZE COUNT CPUS WHO: trafgen floods from CPUS CPUs; WHO (netobs or floor) captures beside tcpdump
  local name=$1 size=$2 count=$3 cpus=$4 who=$5
  echo "-- $name: $count frames of $size bytes, trafgen on $cpus CPU(s) -> veth -> ns $P-r0; tcpdump and $who capturing at once"
  timed "$TMP/td" ip netns exec "$P-r0" tcpdump -n -i eth0 -w "$TMP/td.pcap"
  local tdt=$!
  if [ "$who" = netobs ]; then
    timed "$TMP/no" "$NETOBS" capture "$P-r0" -i eth0 -w "$TMP/no.pcap" --format pcap
  else
    timed "$TMP/no" ip netns exec "$P-r0" "$TMP/capfloor" -i eth0 -w "$TMP/no.pcap"
  fi
  local not=$!
  wait_ready "$TMP/td" "listening on"; wait_ready "$TMP/no" "capturing on|listening on"
  ip netns exec "$P-s" trafgen -o s0 -n "$count" -P "$cpus" -C "$(frame "$size")" >/dev/null 2>&1
  sleep 1.5 # tcpdump's block timeout is 1 s; both hand over every block
  kill -INT "$(child $tdt)" "$(child $not)"; wait $tdt $not || true
  printf "%-8s %10s %10s %8s %9s %9s\n" tool captured dropped "cpu(s)" "ns/pkt" "rss(MB)"
  for t in td no; do
    printf "%-8s %10s %10s %8s %9s %9s\n" "$([ $t = td ] && echo tcpdump || echo "$who")" "$(stat "$TMP/$t" "captured")" "$(stat "$TMP/$t" "dropped by kernel")" "$(cpu "$TMP/$t")" "$(perpkt "$(cpu "$TMP/$t")" "$(stat "$TMP/$t" captured)")" "$(rss "$TMP/$t")"
  done
  echo "ratio $who/tcpdump ($name): captured $(ratio "$(stat "$TMP/no" captured)" "$(stat "$TMP/td" captured)")," \
    "cpu $(ratio "$(cpu "$TMP/no")" "$(cpu "$TMP/td")"), cpu per captured packet $(ratio "$(perpkt "$(cpu "$TMP/no")" "$(stat "$TMP/no" captured)")" "$(perpkt "$(cpu "$TMP/td")" "$(stat "$TMP/td" captured)")")," \
    "rss $(ratio "$(rss "$TMP/no")" "$(rss "$TMP/td")")"
  if [ "$who" = netobs ]; then
    netobs_pp=$(perpkt "$(cpu "$TMP/no")" "$(stat "$TMP/no" captured)")
  else
    echo "ratio netobs/floor ($name, the two runs above): cpu per captured packet $(ratio "$netobs_pp" "$(perpkt "$(cpu "$TMP/no")" "$(stat "$TMP/no" captured)")")"
  fi
  rm -f "$TMP"/td.pcap "$TMP"/no.pcap
}

source bench/lib/machine.sh
trap 'machine; cleanup' EXIT
link 0
if [[ " $PARTS " == *" small "* ]]; then one_run small 64 "$FRAMES" 1 netobs; one_run small 64 "$FRAMES" 1 floor; fi
[[ " $PARTS " == *" big "* ]] && one_run big 1500 "$FRAMES_BIG" "$TRAFGEN_CPUS" netobs
[[ " $PARTS " == *" multi "* ]] || exit 0

echo "-- $NNS namespaces: $(( FRAMES / NNS )) 64-byte frames into each; one netobs -> one pcapng vs $NNS tcpdumps"
for i in $(seq 1 $(( NNS - 1 ))); do link "$i"; done
refs=()
tds=()
for i in $(seq 0 $(( NNS - 1 ))); do
  refs+=("$P-r$i")
  timed "$TMP/td$i" ip netns exec "$P-r$i" tcpdump -n -i eth0 -w "$TMP/td$i.pcap"
  tds+=($!)
done
timed "$TMP/nom" "$NETOBS" capture "${refs[@]}" -i eth0 -w "$TMP/all.pcapng"
nom=$!
for i in $(seq 0 $(( NNS - 1 ))); do wait_ready "$TMP/td$i" "listening on"; done
wait_ready "$TMP/nom" "capturing on"
for i in $(seq 0 $(( NNS - 1 ))); do
  ip netns exec "$P-s" trafgen -o "s$i" -n $(( FRAMES / NNS )) -P 1 -C "$(frame 64)" >/dev/null 2>&1 &
done
wait $(jobs -p | grep -v -e "$nom" $(printf -- ' -e %s' "${tds[@]}")) 2>/dev/null || true
sleep 1.5
for p in "${tds[@]}" "$nom"; do kill -INT "$(child "$p")"; done
wait "${tds[@]}" "$nom" || true
tcap=0; tdrop=0; tcpu=0; trss=0
for i in $(seq 0 $(( NNS - 1 ))); do
  tcap=$(( tcap + $(stat "$TMP/td$i" captured) )); tdrop=$(( tdrop + $(stat "$TMP/td$i" "dropped by kernel") ))
  tcpu=$(awk -v a="$tcpu" -v b="$(cpu "$TMP/td$i")" 'BEGIN{printf "%.2f", a+b}')
  trss=$(awk -v a="$trss" -v b="$(rss "$TMP/td$i")" 'BEGIN{printf "%.1f", a+b}')
done
printf "%-14s %10s %10s %8s %9s\n" tool captured dropped "cpu(s)" "rss(MB)"
printf "%-14s %10s %10s %8s %9s\n" "${NNS}x tcpdump" "$tcap" "$tdrop" "$tcpu" "$trss"
printf "%-14s %10s %10s %8s %9s\n" "netobs" "$(stat "$TMP/nom" '^[0-9]+ packets? captured')" "$(stat "$TMP/nom" '^[0-9]+ packets? dropped by kernel')" "$(cpu "$TMP/nom")" "$(rss "$TMP/nom")"
echo "ratio netobs/${NNS} tcpdumps: captured $(ratio "$(stat "$TMP/nom" '^[0-9]+ packets? captured')" "$tcap"), cpu $(ratio "$(cpu "$TMP/nom")" "$tcpu"), rss $(ratio "$(rss "$TMP/nom")" "$trss")"
