#!/usr/bin/env bash
# make bench: the Go benchmarks (each prints its ratio against the anchor
# measured in the same run), then every bench/[0-9]*.sh comparison script.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "bench: run as root (sudo make bench)" >&2; exit 1; fi
go test -run '^$' -bench . -benchmem -count=1 ./...
for b in bench/[0-9]*.sh; do
  [ -e "$b" ] || continue
  echo; echo "== $b"
  bash "$b"
done
