#!/usr/bin/env bash
# Containers as targets, against what a user does by hand, in one run:
#  1. time from the command to a capture that is listening in a Docker
#     container's namespace: `netobs capture docker:NAME` (resolve through
#     the Docker API, open the namespace, start capturing: its "capturing on"
#     line) against `docker inspect -f {{.State.Pid}} NAME` followed by
#     `nsenter -n -t PID tcpdump -c 1` (tcpdump's "listening on" line);
#     BENCH_RUNS (default 10) runs of each, interleaved, median and spread;
#  2. `netobs ns ls` (which also names the containers of each namespace)
#     against `lsns -t net` (which cannot), wall and CPU time, with
#     CTR_COUNT (default 50) containers running; BENCH_RUNS runs, median.
# Docker is used for both (dockerd started with --storage-driver vfs when
# none answers, and stopped again). The image is built from busybox-static;
# the containers (named ctrbPID_*) and the image are removed at the end,
# also when interrupted or failing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "bench: run as root" >&2; exit 1; fi
for t in docker dockerd busybox nsenter tcpdump lsns python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench: needs $t (make deps)" >&2; exit 1; }
done
if [ -z "${NETOBS:-}" ]; then NETOBS=$PWD/bin/netobs; go build -o "$NETOBS" ./cmd/netobs; fi
RUNS=${BENCH_RUNS:-10}
N=${CTR_COUNT:-50}
P=ctrb$$_
IMAGE=netobs-bench-busybox:$$
work=$(mktemp -d)
dockerd_pid=

cleanup() {
  docker ps -aq --filter "name=^$P" 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker rmi -f "$IMAGE" >/dev/null 2>&1 || true
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! docker version >/dev/null 2>&1; then
  dockerd --storage-driver vfs > "$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 300); do docker version >/dev/null 2>&1 && break; sleep 0.1; done
  docker version >/dev/null 2>&1 || { echo "bench: dockerd did not start: $(tail -3 "$work/dockerd.log")" >&2; exit 1; }
fi
mkdir -p "$work/img/bin"
cp "$(command -v busybox)" "$work/img/bin/busybox"
ln -s busybox "$work/img/bin/sleep"
tar -C "$work/img" -c bin | docker import - "$IMAGE" >/dev/null

echo "containers benchmark: $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), kernel $(uname -r), load $(cut -d' ' -f1 /proc/loadavg), $(docker version -f 'Docker {{.Server.Version}}')"

# 1. Resolve and start a capture.
name=${P}cap
docker run -d --name "$name" "$IMAGE" /bin/sleep 3600 >/dev/null
python3 - "$NETOBS" "$name" "$RUNS" <<'PY'
import os, signal, statistics, subprocess, sys, time
netobs, name, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])

def until(argv, marker, pre=None):
    """Seconds from the start (of pre, if any) to the marker on stderr."""
    t0 = time.perf_counter()
    if pre:
        argv = pre(argv)
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stderr:
            if marker in line:
                return time.perf_counter() - t0
        raise SystemExit(f"{argv[0]} ended without {marker!r} (exit {p.wait()})")
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill(); p.wait()

def manual(argv):
    pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", name], check=True, capture_output=True, text=True).stdout.strip()
    return [a.replace("PID", pid) for a in argv]

ours, theirs = [], []
for _ in range(runs):
    ours.append(until([netobs, "capture", "docker:" + name, "-i", "eth0", "-c", "1", "icmp"], "capturing on"))
    theirs.append(until(["nsenter", "-n", "-t", "PID", "tcpdump", "-c", "1", "-i", "eth0", "icmp"], "listening on", pre=manual))
ms = lambda xs: f"median {statistics.median(xs)*1000:7.1f} ms (min {min(xs)*1000:.1f}, max {max(xs)*1000:.1f})"
print(f"resolve docker:NAME and start capturing, {runs} runs each, interleaved:")
print(f"  {'netobs capture docker:NAME':58} {ms(ours)}")
print(f"  {'docker inspect + nsenter -n -t PID tcpdump':58} {ms(theirs)}")
print(f"  ratio: netobs takes {statistics.median(ours)/statistics.median(theirs):.2f}x the manual path")
PY

# 2. ns ls with N containers running.
seq "$N" | xargs -P 4 -I{} docker run -d --name "${P}{}" "$IMAGE" /bin/sleep 3600 >/dev/null
running=$(docker ps -q --filter "name=^$P" | wc -l)
# The check: netobs names every one of them.
named=$("$NETOBS" ns ls --type net --json | python3 -c '
import json, sys
p = sys.argv[1]
print(sum(1 for l in sys.stdin for c in (json.loads(l).get("containers") or []) if c["container"].startswith(p)))' "$P")
echo "check: $running containers running, $named of them named by netobs ns ls (want $((N + 1)))"
[ "$named" -eq $((N + 1)) ] || exit 1
nets=$(lsns -t net -n | wc -l)
echo "runtimes netobs asks: $("$NETOBS" ps --json | python3 -c '
import json, sys
print(", ".join(sorted({json.loads(l)["runtime"] + " at " + json.loads(l).get("endpoint", "?") for l in sys.stdin})))')"
python3 - "$NETOBS" "$RUNS" "$nets" <<'PY'
import os, statistics, subprocess, sys, time
netobs, runs, nets = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def once(argv):
    """Wall and CPU (user + system) seconds of one run."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {p.returncode}")
    return time.perf_counter() - t0, ru.ru_utime + ru.ru_stime
ours, theirs = [], []
for _ in range(runs):
    ours.append(once([netobs, "ns", "ls", "--type", "net"]))
    theirs.append(once(["lsns", "-t", "net"]))
med = lambda xs, i: statistics.median(x[i] for x in xs)
nw, nc, lw, lc = med(ours, 0), med(ours, 1), med(theirs, 0), med(theirs, 1)
print(f"ns ls with the containers running ({nets} network namespaces), median of {runs} runs, interleaved:")
print(f"  {'netobs ns ls --type net (with CONTAINERS)':44} wall {nw*1000:7.1f} ms  CPU {nc*1000:7.1f} ms")
print(f"  {'lsns -t net':44} wall {lw*1000:7.1f} ms  CPU {lc*1000:7.1f} ms")
print(f"  ratio: netobs takes {nw/lw:.1f}x lsns's wall time, {nc/max(lc, 1e-6):.1f}x its CPU time")
PY
