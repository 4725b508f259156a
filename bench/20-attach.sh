#!/usr/bin/env bash
# Benchmark for netobs attach (run by make bench, or alone as root):
#
# 1. Capture: trafgen, inside the target namespace, sends 1,000,000 frames
#    of 64 and of 1500 bytes at its full rate into a TAP device. The device
#    is read from the host by `netobs attach --tap -w FILE` (pcap) and, in
#    the same run, by the naive reader (bench/naivetap: a water device read
#    in a loop, one frame per Read, nothing written). netobs runs twice: with
#    its default transmit queue and with --txqueuelen 524288 (near the
#    kernel's limit), which holds a whole burst. Reported: frames lost (the
#    tap's TX dropped counter), CPU seconds of the reader over the burst
#    (utime+stime from /proc/PID/stat) per frame it read, and ratios.
# 2. Inject: frames per second writing a pcap of 100,000 64-byte frames
#    into the device with `netobs attach --inject --inject-only`, against
#    tcpreplay --topspeed on the same device.
#
# FRAMES=N changes the burst size. netobs writes its pcap to /dev/null
# (formatting and write(2) included, no file system cost); OUT=file
# writes it to a tmpfs file instead (1.5 GB for the 1500-byte burst).
set -euo pipefail
cd "$(dirname "$0")/.."
NETOBS=${NETOBS:-$PWD/bin/netobs}
FRAMES=${FRAMES:-1000000}
P=bn$$
NS=${P}ns
DEV=${P}t
TICK=$(getconf CLK_TCK)
work=$(mktemp -d /dev/shm/netobs-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for t in trafgen tcpreplay ip go; do
  command -v $t >/dev/null || { echo "bench 20-attach: needs $t (make deps)" >&2; exit 1; }
done
[ -x "$NETOBS" ] || go build -o "$NETOBS" ./cmd/netobs
go build -o "$work/naivetap" ./bench/naivetap

ip netns add "$NS"
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n "$NS" link set lo up

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
stat() { ip netns exec "$NS" cat "/sys/class/net/$DEV/statistics/$1"; }
wait_dev() {
  until ip -n "$NS" link show "$DEV" >/dev/null 2>&1; do
    kill -0 "$1" 2>/dev/null || { echo "reader exited early" >&2; exit 1; }
    sleep 0.01
  done
}

# burst READER SIZE: prints "lost cpu_s frames_read seconds" for one burst.
burst() {
  local reader=$1 size=$2 pid
  case $reader in
    netobs)
      local out=/dev/null
      [ "${OUT:-}" = file ] && out=$work/cap.pcap
      "$NETOBS" attach "$NS" --tap --name "$DEV" -w "$out" 2>"$work/netobs.err" &
      pid=$! ;;
    netobs-bigq)
      local out=/dev/null
      [ "${OUT:-}" = file ] && out=$work/cap.pcap
      "$NETOBS" attach "$NS" --tap --name "$DEV" --txqueuelen 524288 -w "$out" 2>"$work/netobs.err" &
      pid=$! ;;
    naive)
      ip netns exec "$NS" "$work/naivetap" -name "$DEV" >"$work/naive.out" 2>"$work/naive.err" &
      pid=$! ;;
  esac
  pids+=("$pid")
  wait_dev "$pid"
  ip -n "$NS" link set "$DEV" up
  printf '{ 0x02,0,0,0,0,0x99, 0x02,0,0,0,0,0x98, 0x08,0x00, fill(0x00, %d) }\n' $((size - 14)) >"$work/frame.cfg"
  sleep 0.2
  local d0 p0 c0 t0 t1 d1 p1 c1
  d0=$(stat tx_dropped); p0=$(stat tx_packets); c0=$(cpu "$pid")
  t0=$(date +%s%N)
  ip netns exec "$NS" trafgen -o "$DEV" -c "$work/frame.cfg" -n "$FRAMES" -P 1 -Q -C -q >/dev/null 2>&1 ||
    ip netns exec "$NS" trafgen -o "$DEV" -c "$work/frame.cfg" -n "$FRAMES" -P 1 -Q -C >/dev/null
  t1=$(date +%s%N)
  # Wait until every frame is either read or dropped.
  local n=0
  while :; do
    d1=$(stat tx_dropped); p1=$(stat tx_packets)
    [ $(( (d1 - d0) + (p1 - p0) )) -ge "$FRAMES" ] && break
    n=$((n + 1)); [ $n -gt 500 ] && break
    sleep 0.01
  done
  c1=$(cpu "$pid")
  local qlen; qlen=$(ip -n "$NS" -o link show "$DEV" | grep -o 'qlen [0-9]*' | cut -d' ' -f2)
  # Whether the reader batched its reads through io_uring: its ring is an
  # open anon_inode:[io_uring] descriptor.
  if ls -l "/proc/$pid/fd" 2>/dev/null | grep -q 'io_uring'; then echo yes >"$work/uring.$reader"; else echo no >"$work/uring.$reader"; fi
  kill -INT "$pid"; wait "$pid" || true
  rm -f "$work/cap.pcap"
  echo "$qlen $((d1 - d0)) $(awk -v c=$((c1 - c0)) -v t="$TICK" 'BEGIN{printf "%.2f", c/t}') $((p1 - p0)) $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')"
}

echo "netobs attach capture benchmark: $FRAMES frames per burst, trafgen -P 1 inside the namespace; $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), kernel $(uname -r), load $(cut -d' ' -f1 /proc/loadavg), NETOBS_NO_IO_URING=${NETOBS_NO_IO_URING:-unset}"
printf '%-5s %-12s %7s %8s %7s %8s %7s %12s %11s\n' size reader qlen lost lost% read cpu_s ns/frame_read trafgen_fps
for size in 64 1500; do
  declare -A res=()
  for reader in naive netobs netobs-bigq; do
    read -r qlen lost cpus nread secs < <(burst $reader $size)
    nsf=$(awk -v c="$cpus" -v n="$nread" 'BEGIN{printf "%.0f", (n > 0 ? c*1e9/n : 0)}')
    fps=$(awk -v n="$FRAMES" -v s="$secs" 'BEGIN{printf "%.0f", n/s}')
    printf '%-5s %-12s %7s %8d %6.2f%% %8d %7s %12s %11s\n' $size $reader "$qlen" "$lost" "$(awk -v l="$lost" -v n="$FRAMES" 'BEGIN{print 100*l/n}')" "$nread" "$cpus" "$nsf" "$fps"
    res[$reader.lost]=$lost; res[$reader.nsf]=$nsf
  done
  echo "io_uring used by netobs (${size}B): $(cat "$work/uring.netobs") (default queue), $(cat "$work/uring.netobs-bigq") (big queue)"
  for r in netobs netobs-bigq; do
    awk -v r=$r -v nl="${res[$r.lost]}" -v bl="${res[naive.lost]}" -v nc="${res[$r.nsf]}" -v bc="${res[naive.nsf]}" -v s=$size 'BEGIN{
      printf "ratio %sB %s/naive: frames lost %s/%s (%.2fx), CPU per frame read %.2fx\n", s, r, nl, bl, (bl > 0 ? nl/bl : 0), (bc > 0 ? nc/bc : 0) }'
  done
done

echo
echo "inject benchmark: 100000 frames of 64 bytes from a pcap into the tap"
"$work/naivetap" -gen "$work/in.pcap" -n 100000 -size 64
"$NETOBS" attach "$NS" --tap --name "$DEV" --persist --inject "$work/in.pcap" --inject-only 2>"$work/inj.err"
nfps=$(grep -o '([0-9]* frames/s)' "$work/inj.err" | tr -dc 0-9)
ip -n "$NS" link set "$DEV" up
tfps=$(ip netns exec "$NS" tcpreplay -i "$DEV" -t "$work/in.pcap" 2>&1 | awk '/Rated:/{for(i=1;i<=NF;i++) if($i=="pps") print int($(i-1))}' | head -1)
ip -n "$NS" link del "$DEV"
printf 'netobs --inject: %s frames/s; tcpreplay --topspeed: %s frames/s; ratio %.2fx\n' "$nfps" "$tfps" "$(awk -v a="$nfps" -v b="$tfps" 'BEGIN{print (b>0 ? a/b : 0)}')"
