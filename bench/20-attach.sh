#!/usr/bin/env bash
# Benchmark for netobs attach (run by make bench, or alone as root):
#
# 1. Capture: trafgen, inside the target namespace, sends 1,000,000 frames
#    of 64 and of 1500 bytes at its full rate (-Q: through the qdisc layer)
#    into a TAP device. The device is read from the host by `netobs attach
#    --tap -w FILE` (pcap; the default reads an AF_PACKET ring on the device
#    while the device drops what the ring saw), by the same with
#    --read-queue (the device's queue, io_uring batches, --txqueuelen 65536
#    by default) and by the naive reader (bench/naivetap: a water device
#    read in a loop, one frame per Read, nothing written), with water's
#    queue (naive) and with a queue that holds the whole burst (naive-bigq,
#    txqueuelen 524288: it then reads every frame, as the ring does, so
#    the two do the same work), one after the
#    other, ROUNDS times (default 1) interleaved. Reported per burst: frames
#    read and lost (naive and --read-queue: the tap's TX dropped counter;
#    the ring: netobs's own "dropped by kernel" count, as the device's TX
#    dropped counter counts every frame it discards), and CPU per frame
#    read: the reader's (utime+stime from /proc/PID/stat), the reader's plus
#    trafgen's (the ring's copy is done in the sender's system calls, so it
#    is charged to trafgen), and the whole machine's (/proc/stat busy time
#    over the burst, which includes whatever else runs), each as a ratio to
#    the naive loop's in the same round.
# 2. Inject: frames per second writing a pcap of 100,000 64-byte frames
#    into the device with `netobs attach --inject --inject-only`, against
#    tcpreplay --topspeed on the same device.
#
# KIND=tun does the capture part with a TUN device instead (raw IPv4
# packets of SIZE bytes, the naive loop with a water TUN device, netobs
# --tun; the ring path then discards through an eBPF filter) and skips the
# inject part. FRAMES=N changes the burst size, ROUNDS=N the rounds,
# SIZES="64 1500" the frame sizes. netobs writes its pcap to /dev/null (formatting and write(2)
# included, no file system cost); OUT=file writes it to a tmpfs file
# instead (1.5 GB for the 1500-byte burst).
set -euo pipefail
cd "$(dirname "$0")/.."
NETOBS=${NETOBS:-$PWD/bin/netobs}
FRAMES=${FRAMES:-1000000}
KIND=${KIND:-tap}
case $KIND in tap|tun) ;; *) echo "bench 20-attach: KIND=tap or KIND=tun, not $KIND" >&2; exit 2 ;; esac
naiveflag=; [ "$KIND" = tun ] && naiveflag=-tun
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
for t in trafgen tcpreplay ip go lscpu /usr/bin/time; do
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

busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }

# burst READER SIZE: prints "qlen lost reader_ticks trafgen_s busy_ticks frames_read seconds" for one burst.
burst() {
  local reader=$1 size=$2 pid out=/dev/null
  [ "${OUT:-}" = file ] && out=$work/cap.pcap
  case $reader in
    netobs) "$NETOBS" attach "$NS" --$KIND --name "$DEV" -w "$out" 2>"$work/netobs.err" & pid=$! ;;
    netobs-queue) "$NETOBS" attach "$NS" --$KIND --name "$DEV" --read-queue -w "$out" 2>"$work/netobs.err" & pid=$! ;;
    naive*) ip netns exec "$NS" "$work/naivetap" -name "$DEV" $naiveflag >"$work/naive.out" 2>"$work/naive.err" & pid=$! ;;
  esac
  pids+=("$pid")
  wait_dev "$pid"
  # naive-bigq: the same loop with a queue that holds the whole burst (near
  # the largest the kernel resizes a TUN queue to), so
  # that it reads every frame, as netobs's ring does: equal work.
  [ "$reader" = naive-bigq ] && ip -n "$NS" link set "$DEV" txqueuelen 524288
  if [ "${reader#naive}" = "$reader" ]; then
    until grep -q 'netobs: attached' "$work/netobs.err"; do kill -0 "$pid" 2>/dev/null || { echo "netobs exited early" >&2; exit 1; }; sleep 0.01; done
  fi
  ip -n "$NS" link set "$DEV" up
  if [ "$KIND" = tun ]; then
    # An IPv4/UDP packet of SIZE bytes (no link header on a TUN device).
    printf '{ 0x45,0, %d,%d, 0,0,0,0, 64,17,0,0, 10,88,0,2, 10,88,0,1, 0x23,0x28, 0,9, %d,%d, 0,0, fill(0x00, %d) }\n' \
      $((size >> 8)) $((size & 255)) $(((size - 20) >> 8)) $(((size - 20) & 255)) $((size - 28)) >"$work/frame.cfg"
  else
    printf '{ 0x02,0,0,0,0,0x99, 0x02,0,0,0,0,0x98, 0x08,0x00, fill(0x00, %d) }\n' $((size - 14)) >"$work/frame.cfg"
  fi
  sleep 0.2
  local d0 p0 c0 b0 t0 t1 d1 p1 c1 b1
  d0=$(stat tx_dropped); p0=$(stat tx_packets); c0=$(cpu "$pid"); b0=$(busy)
  t0=$(date +%s%N)
  /usr/bin/time -o "$work/tg.time" -f '%U %S' ip netns exec "$NS" trafgen -o "$DEV" -c "$work/frame.cfg" -n "$FRAMES" -P 1 -Q -C -q >/dev/null 2>&1 ||
    /usr/bin/time -o "$work/tg.time" -f '%U %S' ip netns exec "$NS" trafgen -o "$DEV" -c "$work/frame.cfg" -n "$FRAMES" -P 1 -Q -C >/dev/null
  t1=$(date +%s%N)
  # Wait until every frame is either queued or dropped by the device, and
  # the ring's last block is handed over (10 ms block timeout).
  local n=0
  while :; do
    d1=$(stat tx_dropped); p1=$(stat tx_packets)
    [ $(( (d1 - d0) + (p1 - p0) )) -ge "$FRAMES" ] && break
    n=$((n + 1)); [ $n -gt 500 ] && break
    sleep 0.01
  done
  sleep 0.1
  c1=$(cpu "$pid"); b1=$(busy)
  local qlen; qlen=$(ip -n "$NS" -o link show "$DEV" | grep -o 'qlen [0-9]*' | cut -d' ' -f2)
  # Whether the reader batched its reads through io_uring: its ring is an
  # open anon_inode:[io_uring] descriptor.
  if ls -l "/proc/$pid/fd" 2>/dev/null | grep -q 'io_uring'; then echo yes >"$work/uring.$reader"; else echo no >"$work/uring.$reader"; fi
  kill -INT "$pid"; wait "$pid" || true
  rm -f "$work/cap.pcap"
  local lost=$((d1 - d0)) nread=$((p1 - p0))
  if [ "$reader" = netobs ]; then
    read -r nread lost < <(sed -n 's/^netobs: \([0-9]*\) frames read, [0-9]* written, \([0-9]*\) dropped by kernel.*/\1 \2/p' "$work/netobs.err")
  fi
  local tg; tg=$(awk '{printf "%.2f", $1 + $2}' "$work/tg.time")
  echo "$qlen $lost $((c1 - c0)) $tg $((b1 - b0)) $nread $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')"
}

echo "netobs attach capture benchmark ($KIND): $FRAMES frames per burst, trafgen -P 1 -Q inside the namespace; $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), NETOBS_NO_IO_URING=${NETOBS_NO_IO_URING:-unset}"
printf '%-5s %-12s %7s %8s %7s %8s %9s %9s %9s %9s %11s\n' size reader qlen lost lost% read rd_ns/f rd+tg_ns/f sys_ns/f tg_s trafgen_fps
for round in $(seq "${ROUNDS:-1}"); do
for size in ${SIZES:-64 1500}; do
  declare -A res=()
  for reader in naive naive-bigq netobs netobs-queue; do
    read -r qlen lost ticks tgs bticks nread secs < <(burst $reader $size)
    read -r rd both sys < <(awk -v c="$ticks" -v g="$tgs" -v b="$bticks" -v t="$TICK" -v n="$nread" 'BEGIN{
      if (n == 0) n = 1; printf "%.0f %.0f %.0f\n", c/t*1e9/n, (c/t+g)*1e9/n, b/t*1e9/n }')
    fps=$(awk -v n="$FRAMES" -v s="$secs" 'BEGIN{printf "%.0f", n/s}')
    printf '%-5s %-12s %7s %8d %6.2f%% %8d %9s %9s %9s %9s %11s\n' $size $reader "$qlen" "$lost" "$(awk -v l="$lost" -v n="$FRAMES" 'BEGIN{print 100*l/n}')" "$nread" "$rd" "$both" "$sys" "$tgs" "$fps"
    res[$reader.rd]=$rd; res[$reader.both]=$both; res[$reader.sys]=$sys
  done
  echo "io_uring used (${size}B): netobs $(cat "$work/uring.netobs") (ring path), netobs --read-queue $(cat "$work/uring.netobs-queue"); load $(cut -d' ' -f1-3 /proc/loadavg)"
  for r in netobs netobs-queue; do
    for base in naive naive-bigq; do
      awk -v r=$r -v base=$base -v s=$size -v a="${res[$r.rd]}" -v b="${res[$base.rd]}" -v c="${res[$r.both]}" -v d="${res[$base.both]}" -v e="${res[$r.sys]}" -v f="${res[$base.sys]}" 'BEGIN{
        printf "ratio %sB %s/%s, CPU per frame read: reader %.2fx, reader+trafgen %.2fx, whole machine %.2fx\n", s, r, base, a/b, c/d, e/f }'
    done
  done
done
done

[ "$KIND" = tap ] || exit 0
echo
echo "inject benchmark: 100000 frames of 64 bytes from a pcap into the tap"
"$work/naivetap" -gen "$work/in.pcap" -n 100000 -size 64
"$NETOBS" attach "$NS" --tap --name "$DEV" --persist --inject "$work/in.pcap" --inject-only 2>"$work/inj.err"
nfps=$(grep -o '([0-9]* frames/s)' "$work/inj.err" | tr -dc 0-9)
ip -n "$NS" link set "$DEV" up
tfps=$(ip netns exec "$NS" tcpreplay -i "$DEV" -t "$work/in.pcap" 2>&1 | awk '/Rated:/{for(i=1;i<=NF;i++) if($i=="pps") print int($(i-1))}' | head -1)
ip -n "$NS" link del "$DEV"
printf 'netobs --inject: %s frames/s; tcpreplay --topspeed: %s frames/s; ratio %.2fx\n' "$nfps" "$tfps" "$(awk -v a="$nfps" -v b="$tfps" 'BEGIN{print (b>0 ? a/b : 0)}')"
