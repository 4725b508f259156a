#!/usr/bin/env bash
# netobs events --all against one `ip monitor` per namespace, side by side in
# one run: RSS while watching 10, 100 and 1,000 namespaces, latency from a
# change to its event (made with ip, and made over netlink), and a burst of
# 10,000 changes counted event by event. Makes and removes its own namespaces
# (named evbPID_N_I). EVENTS_COUNTS=10,100 for a shorter run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "bench: run as root" >&2; exit 1; fi
NETOBS=${NETOBS:-$PWD/bin/netobs}
[ -x "$NETOBS" ] || go build -o "$NETOBS" ./cmd/netobs
go run ./bench/eventsbench -netobs "$NETOBS" -counts "${EVENTS_COUNTS:-10,100,1000}" -burst 10000 -changes 200
