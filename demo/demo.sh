#!/usr/bin/env bash
# make demo: runs every part of the built-in example in order. Each part
# makes its own namespaces, shows netobs at work and removes what it made,
# even when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "demo: run as root (sudo make demo)" >&2; exit 1; fi
for part in demo/[0-9]*.sh; do
  bash "$part"
done
echo
echo "demo: done; nothing is left behind (ip netns list shows none of the demo's namespaces)."
