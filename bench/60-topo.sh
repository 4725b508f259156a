#!/usr/bin/env bash
# netobs topo --all against the shell loop a user would write
# (`ip -n NS -d -j link` for every named namespace), side by side in one run,
# over TOPO_COUNT (default 500) namespaces, each with a veth pair to a port of
# one bridge in a shared namespace. Prints wall time and peak RSS of each
# (median of 3 runs) and their ratio. Makes and removes its own namespaces
# (named tpbPID_*), also when interrupted or failing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "bench: run as root" >&2; exit 1; fi
for t in ip /usr/bin/time python3; do
  command -v "$t" >/dev/null || { echo "bench: needs $t (make deps)" >&2; exit 1; }
done
# Built afresh unless given: a bin/netobs from before topo existed would not do.
if [ -z "${NETOBS:-}" ]; then NETOBS=$PWD/bin/netobs; go build -o "$NETOBS" ./cmd/netobs; fi
N=${TOPO_COUNT:-500}
P=tpb$$_
work=$(mktemp -d)

. bench/lib/bridged-ns.sh
cleanup() {
  bridged_ns_cleanup
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bridged_ns_make

# The check: netobs finds every pair and every port.
"$NETOBS" topo --all --format json > "$work/g.json"
python3 - "$work/g.json" "$P" "$N" <<'PY'
import json, sys
g = json.load(open(sys.argv[1])); p = sys.argv[2]; n = int(sys.argv[3])
ns = {x["id"]: x for x in g["nodes"] if x["type"] == "namespace"}
ifs = {x["id"]: x for x in g["nodes"] if x["type"] == "interface"}
ours = lambda i: any(nm.startswith(p) for nm in ns[ifs[i]["namespace"]].get("names", []))
veth = sum(1 for e in g["edges"] if e["kind"] == "veth" and ours(e["from"]) and ours(e["to"]))
port = sum(1 for e in g["edges"] if e["kind"] == "port" and ours(e["from"]))
print(f"check: {veth} veth pairs and {port} bridge ports among {n} namespaces (want {n} and {n})")
sys.exit(0 if veth == n and port == n else 1)
PY

named=$(ip netns list | wc -l)
total=$("$NETOBS" topo --all --format json | python3 -c 'import json,sys; print(sum(1 for x in json.load(sys.stdin)["nodes"] if x["type"]=="namespace"))')

measure() { # prints "seconds maxrss_kb"
  /usr/bin/time -f '%e %M' -o "$work/t" "$@" > /dev/null
  cat "$work/t"
}
loop() { for ns in $(ip netns list | awk '{print $1}'); do ip -n "$ns" -d -j link 2>/dev/null || true; done; }
export -f loop

for r in 1 2 3; do
  measure "$NETOBS" topo --all >> "$work/netobs"
  measure bash -c loop >> "$work/loop"
done
median() { sort -n -k1 "$1" | sed -n 2p; }
read -r nt nm < <(median "$work/netobs")
read -r lt lm < <(median "$work/loop")
echo "namespaces: $total drawn by netobs ($named named; the loop reads the named ones)"
printf '%-44s %8s s %8s MB peak RSS\n' "netobs topo --all (text)" "$nt" "$(awk -v k="$nm" 'BEGIN{printf "%.1f", k/1024}')"
printf '%-44s %8s s %8s MB peak RSS (largest ip)\n' "for ns: ip -n NS -d -j link" "$lt" "$(awk -v k="$lm" 'BEGIN{printf "%.1f", k/1024}')"
awk -v a="$lt" -v b="$nt" 'BEGIN { if (b > 0) printf "ratio: the shell loop takes %.1fx netobs topo --all\n", a/b; else print "ratio: netobs took under 10 ms" }'
