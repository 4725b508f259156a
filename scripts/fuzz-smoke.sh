#!/usr/bin/env bash
# Runs every fuzz target in the module for a few seconds each (FUZZTIME,
# default 3s): a smoke run, so that a parser change that panics on input
# near the committed corpus fails `make test`. The committed corpus under
# each package's testdata/fuzz/ also runs as ordinary test cases in `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
go=${GO:-go}
fuzztime=${FUZZTIME:-3s}
ran=0
for pkg in $($go list ./...); do
  targets=$($go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
  for t in $targets; do
    echo "fuzz: $pkg $t ($fuzztime)"
    $go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/fuzz-smoke.$$ 2>&1 || {
      cat /tmp/fuzz-smoke.$$ >&2; rm -f /tmp/fuzz-smoke.$$
      echo "fuzz: $pkg $t failed; the failing input is under that package's testdata/fuzz/$t" >&2
      exit 1
    }
    ran=$((ran + 1))
  done
done
rm -f /tmp/fuzz-smoke.$$
echo "fuzz: $ran targets ran for $fuzztime each without a failure"
