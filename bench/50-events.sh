#!/usr/bin/env bash
# netobs events --all against one `ip monitor` per namespace, side by side in
# one run: RSS while watching 10, 100 and 1,000 namespaces, latency from a
# change to its event (made with ip, and made over netlink), and a burst of
# 10,000 changes counted event by event. Makes and removes its own namespaces
# (named evbPID_N_I). EVENTS_COUNTS=10,100 for a shorter run,
# EVENTS_COUNTS=1000,10000 for the 10,000-namespace goal (no ip monitor anchor
# above EVENTS_ANCHOR_MAX=1000 namespaces: 10,000 of them would need ~25 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "bench: run as root" >&2; exit 1; fi
NETOBS=${NETOBS:-$PWD/bin/netobs}
[ -x "$NETOBS" ] || go build -o "$NETOBS" ./cmd/netobs
COUNTS=${EVENTS_COUNTS:-10,100,1000}
# netobs holds an fd per watched namespace (its netlink socket); Go raises
# the soft limit to the hard one, so raise the hard one (as root) when the
# largest count needs more than it allows.
max=0
for c in ${COUNTS//,/ }; do [ "$c" -gt "$max" ] && max=$c; done
need=$((max + 256))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
	echo "bench: raising RLIMIT_NOFILE from $(ulimit -Hn) to $need for $max namespaces" >&2
	ulimit -Hn "$need" 2>/dev/null ||
		echo "bench: cannot (no CAP_SYS_RESOURCE): netobs may run out of fds above about $(($(ulimit -Hn) - 256)) namespaces" >&2
fi
[ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$need" ] && ulimit -Sn "$(ulimit -Hn)"
PREFIX=evb$(($$ % 100000))
BENCH_PID=
cleanup() { # whatever the bench left behind, even when it was interrupted
	if [ -n "$BENCH_PID" ]; then
		# Its children (netobs, ip monitor, ip) die with it (Pdeathsig).
		kill -TERM "$BENCH_PID" 2>/dev/null || true
		wait "$BENCH_PID" 2>/dev/null || true
	fi
	ls /run/netns 2>/dev/null | grep "^${PREFIX}_" | sed 's/^/netns del /' >"/tmp/$PREFIX.del" || true
	[ -s "/tmp/$PREFIX.del" ] && ip -force -batch "/tmp/$PREFIX.del" >/dev/null 2>&1
	rm -f "/tmp/$PREFIX.del" "/tmp/$PREFIX.bench"
	left=$(ls /run/netns 2>/dev/null | grep -c "^${PREFIX}_" || true)
	[ "$left" -eq 0 ] || echo "bench: $left namespaces ${PREFIX}_* could not be removed" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
go build -o "/tmp/$PREFIX.bench" ./bench/eventsbench
# In the background and waited for, so that a signal to this script runs
# the cleanup at once instead of after the bench has finished.
"/tmp/$PREFIX.bench" -netobs "$NETOBS" -prefix "$PREFIX" -anchor-max "${EVENTS_ANCHOR_MAX:-1000}" \
	-counts "$COUNTS" -burst 10000 -changes 200 &
BENCH_PID=$!
status=0
wait "$BENCH_PID" || status=$?
BENCH_PID=
exit "$status"
