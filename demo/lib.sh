# Sourced by every demo part: the binary, a per-run name prefix, a step
# printer, and cleanup that runs on any exit.
set -euo pipefail
NETOBS=${NETOBS:-$PWD/bin/netobs}
DEMO_PREFIX=demo$$
_cleanups=()
on_exit() { _cleanups+=("$*"); }
_run_cleanups() {
  local i
  for ((i=${#_cleanups[@]}-1; i>=0; i--)); do eval "${_cleanups[i]}" >/dev/null 2>&1 || true; done
}
trap _run_cleanups EXIT
section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[36m$ %s\033[0m\n' "$*"; "$@"; }
