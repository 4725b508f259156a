#!/usr/bin/env bash
# Installs, non-interactively, the Debian packages that netobs's tests, demo
# and benchmarks run against, if any is missing.
set -euo pipefail
packages=(iproute2 util-linux procps iputils-ping arping tcpdump tshark iperf3 socat
          netsniff-ng tcpreplay libpcap-dev libdbus-1-dev gcc time graphviz chromium
          docker.io podman runc busybox-static containerd containernetworking-plugins)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages ${missing[*]}; run as root (sudo make deps)" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
