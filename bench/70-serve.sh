#!/usr/bin/env bash
# netobs serve with its page open in headless Chromium, over SERVE_COUNT
# (default 500) namespaces each with a veth pair to a bridge port (the
# setup of 60-topo.sh): netobs's idle CPU over SERVE_IDLE (default 30 s)
# from /proc/PID/stat, and the time from a change made with ip to its
# event in the page's log and to the new interface being drawn. Makes and
# removes its own namespaces (named svbPID_*), also when interrupted or
# failing, and stops the server it started.
#
# netobs serve watches every namespace on the machine, so the script runs
# in its own mount and PID namespaces (unshare) with an empty /run/netns:
# netobs sees this script's namespaces and processes only, not those of
# whatever else runs on the machine (set SERVE_SHARED=1 to see them all).
# When that mount namespace ends, its namespaces go with it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "bench: run as root" >&2; exit 1; fi
if [ -z "${SERVE_SHARED:-}" ] && [ -z "${SERVE_INNER:-}" ]; then
  exec env SERVE_INNER=1 unshare --mount --pid --fork --mount-proc --propagation private bash "$0" "$@"
fi
if [ -n "${SERVE_INNER:-}" ]; then
  mkdir -p /run/netns
  mount -t tmpfs -o mode=755 netobs-bench /run/netns
fi
for t in ip chromium; do
  command -v "$t" >/dev/null || { echo "bench: needs $t (make deps)" >&2; exit 1; }
done
if [ -z "${NETOBS:-}" ]; then NETOBS=$PWD/bin/netobs; go build -o "$NETOBS" ./cmd/netobs; fi
N=${SERVE_COUNT:-500}
P=svb$$_
work=$(mktemp -d)
go build -o "$work/servebench" ./bench/servebench

. bench/lib/bridged-ns.sh
srv=
cleanup() {
  if [ -n "$srv" ]; then kill -INT "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; fi
  bridged_ns_cleanup
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bridged_ns_make

"$NETOBS" serve --listen 127.0.0.1:0 2> "$work/serve.err" &
srv=$!
url=
for _ in $(seq 1 100); do
  url=$(grep -o 'http://[^ ]*' "$work/serve.err" | head -1 || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "bench: netobs serve did not start: $(cat "$work/serve.err")" >&2; exit 1; }
echo "namespaces: $N made by this script (+ its bridge's), $(ip netns list | wc -l) named in all${SERVE_INNER:+ in the private /run/netns}"
"$work/servebench" -url "$url" -pid "$srv" -ns "${P}1" -idle "${SERVE_IDLE:-30s}"
