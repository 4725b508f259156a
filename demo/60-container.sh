#!/usr/bin/env bash
# Demo part 60: a container named as the user knows it (podman:web or
# docker:web), resolved through the runtime's API: netobs ps, ns id, and a
# capture by name. Uses podman or Docker, whichever the machine has; the
# image is built from busybox-static (no registry needed) and removed again.
source "$(dirname "$0")/lib.sh"
OUT=$(mktemp -d /tmp/netobs-demo.XXXXXX)
on_exit "rm -rf $OUT"
answers() { [ -S "$1" ] && timeout 5 socat -u OPEN:/dev/null "UNIX-CONNECT:$1" 2>/dev/null; }

RT= RUNARGS=() RMARGS=()
if answers /var/run/docker.sock && command -v docker >/dev/null; then
  RT=docker
elif command -v podman >/dev/null && command -v runc >/dev/null; then
  RT=podman
  # podman's crun rejects this kind of host's hybrid cgroups; runc works.
  RUNARGS=(--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
  RMARGS=(--time 0) # sleep as PID 1 ignores SIGTERM
  if ! answers /run/podman/podman.sock; then
    mkdir -p /run/podman
    podman system service --time=0 unix:///run/podman/podman.sock >"$OUT/podman.log" 2>&1 &
    svc=$!
    on_exit "kill $svc; wait $svc"
    for _ in $(seq 100); do answers /run/podman/podman.sock && break; sleep 0.1; done
  fi
fi
if [ -z "$RT" ] || ! command -v busybox >/dev/null; then
  echo "demo: neither a running Docker nor podman (with runc, busybox-static) here; skipping the container part (make deps installs them)"
  exit 0
fi

NAME=$DEMO_PREFIX-web IMAGE=netobs-demo-busybox:$DEMO_PREFIX
section "containers: a $RT container named $NAME"
mkdir -p "$OUT/rootfs/bin"
cp "$(command -v busybox)" "$OUT/rootfs/bin/busybox"
for a in sh sleep ping; do ln -s busybox "$OUT/rootfs/bin/$a"; done
tar -C "$OUT/rootfs" -c bin | $RT import - "$IMAGE" >/dev/null 2>&1
on_exit "$RT rmi -f $IMAGE"
on_exit "$RT rm -f ${RMARGS[*]} $NAME"
$RT run -d --name "$NAME" --cap-add NET_RAW "${RUNARGS[@]}" "$IMAGE" /bin/sleep 3600 >/dev/null
GW=$($RT inspect -f '{{.NetworkSettings.Gateway}}' "$NAME")

section "containers: netobs ps lists it with its network namespace and address"
show "$NETOBS" ps --runtime "$RT"

section "containers: $RT:$NAME is an NSREF like any other"
show "$NETOBS" ns id "$RT:$NAME"

section "containers: capture inside $RT:$NAME by name while it pings its gateway"
"$NETOBS" capture "$RT:$NAME" -c 4 -- icmp >"$OUT/out" 2>"$OUT/err" &
pid=$!
on_exit "kill $pid"
until grep -q "capturing on" "$OUT/err"; do sleep 0.05; done
$RT exec "$NAME" ping -c 2 -W 5 "$GW" >/dev/null
wait $pid || true
cat "$OUT/err" "$OUT/out"
