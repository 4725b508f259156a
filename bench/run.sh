#!/usr/bin/env bash
# make bench: the Go benchmarks (each prints its ratio against the anchor
# measured in the same run), then every bench/[0-9]*.sh comparison script.
#   bash bench/run.sh [SCRIPT...]   only those scripts, no Go benchmarks
#   REPEAT=N                        each script N times in a row (each run
#                                   measures netobs and its anchor), then
#                                   the median and range of every ratio it
#                                   printed (bench/lib/median.awk): one run
#                                   on a small shared VM moves by 10-30 %
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "bench: run as root (sudo make bench)" >&2; exit 1; fi
REPEAT=${REPEAT:-1}
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "bench: REPEAT must be a whole number of runs, not \"$REPEAT\"" >&2; exit 2; }
source bench/lib/machine.sh
machine
scripts=("$@")
if [ ${#scripts[@]} -eq 0 ]; then
  go test -run '^$' -bench . -benchmem -count=1 ./...
  scripts=(bench/[0-9]*.sh)
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for b in "${scripts[@]}"; do
  [ -e "$b" ] || { echo "bench: no script $b" >&2; exit 2; }
  echo; echo "== $b"
  : > "$out"
  for i in $(seq 1 "$REPEAT"); do
    [ "$REPEAT" -eq 1 ] || echo "-- run $i of $REPEAT"
    bash "$b" | tee -a "$out"
  done
  [ "$REPEAT" -eq 1 ] || awk -f bench/lib/median.awk "$out"
done
