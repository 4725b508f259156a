#!/usr/bin/env bash
# End-to-end check of netobs on Kubernetes, for a user with a kind cluster.
# Not run in CI (no API server here). It:
#   1. builds the image (make image: static netobs, FROM scratch) and the
#      kubectl-netobs plugin,
#   2. loads the image into the kind cluster's nodes,
#   3. applies deploy/kubernetes and waits for an agent on every node,
#   4. starts a test pod, captures its traffic with `kubectl netobs`, and
#      checks with tshark (if installed) that the capture has packets,
#   5. removes the test pod (and, with CLEANUP=all, the agents).
#
# Usage: test/e2e/kind.sh [kind-cluster-name]       (default: kind)
#   KIND=kind KUBECTL=kubectl PODMAN=podman IMAGE=localhost/netobs:dev
#   CLEANUP=pod|all   what to remove at the end (default pod)
#
# Needs: kind, kubectl, podman (or DOCKER=1 to load from docker), make, go,
# gcc, libpcap-dev, libdbus-1-dev. The cluster must exist: kind create cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${1:-kind}
KIND=${KIND:-kind}
KUBECTL=${KUBECTL:-kubectl}
PODMAN=${PODMAN:-podman}
IMAGE=${IMAGE:-localhost/netobs:dev}
CLEANUP=${CLEANUP:-pod}
CTX=kind-$CLUSTER
NS=netobs-e2e-$$
k() { "$KUBECTL" --context "$CTX" "$@"; }

step() { printf '\n== %s\n' "$*" >&2; }
cleanup() {
  step "cleanup"
  k delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  if [ "$CLEANUP" = all ]; then
    k delete -k deploy/kubernetes --ignore-not-found >/dev/null 2>&1 || true
  fi
  rm -rf "$TMP"
}
TMP=$(mktemp -d)
trap cleanup EXIT

step "build the image $IMAGE and the plugin"
make image IMAGE="$IMAGE" PODMAN="$PODMAN"
make plugin
PLUGIN=$PWD/bin/kubectl-netobs

step "load $IMAGE into kind cluster $CLUSTER"
if [ "${DOCKER:-}" = 1 ]; then
  "$KIND" load docker-image "$IMAGE" --name "$CLUSTER"
else
  "$PODMAN" save --format docker-archive -o "$TMP/netobs.tar" "$IMAGE"
  "$KIND" load image-archive "$TMP/netobs.tar" --name "$CLUSTER"
fi

step "deploy the agents"
k apply -k deploy/kubernetes
k -n netobs set image daemonset/netobs-agent agent="$IMAGE" >/dev/null
k -n netobs rollout status daemonset/netobs-agent --timeout=180s

step "a pod to observe, in namespace $NS"
k create namespace "$NS" >/dev/null
k -n "$NS" run web --image=registry.k8s.io/e2e-test-images/agnhost:2.53 --restart=Never \
  --command -- /agnhost netexec --http-port=8080
k -n "$NS" wait --for=condition=Ready pod/web --timeout=180s
IP=$(k -n "$NS" get pod web -o jsonpath='{.status.podIP}')

step "what kubectl netobs resolves"
"$PLUGIN" --context "$CTX" -n "$NS" targets pod/web

step "capture pod/web while another pod talks to it"
"$PLUGIN" --context "$CTX" -n "$NS" capture pod/web -c 20 -w "$TMP/web.pcapng" tcp port 8080 2> "$TMP/capture.err" &
CAP=$!
sleep 3
k -n "$NS" run client --image=registry.k8s.io/e2e-test-images/agnhost:2.53 --restart=Never \
  --command -- sh -c "for i in 1 2 3 4 5; do wget -qO- http://$IP:8080/hostname; sleep 1; done"
wait "$CAP"
cat "$TMP/capture.err" >&2
grep -q '^node .*: [0-9]* captured, .*; to the end$' "$TMP/capture.err" || { echo "FAIL: no per-node counts" >&2; exit 1; }

step "check the capture"
if command -v tshark >/dev/null; then
  n=$(tshark -r "$TMP/web.pcapng" 2>/dev/null | wc -l)
  tshark -r "$TMP/web.pcapng" -T fields -e frame.interface_name -e frame.interface_description | sort | uniq -c
  tshark -r "$TMP/web.pcapng" -T fields -e frame.interface_name | grep -q "@pod:$NS/web@" ||
    { echo "FAIL: interfaces not named DEVICE@pod:$NS/web@NODE" >&2; exit 1; }
  [ "$n" -gt 0 ] || { echo "FAIL: no packets captured" >&2; exit 1; }
  echo "OK: $n packets" >&2
else
  ls -l "$TMP/web.pcapng"
  [ -s "$TMP/web.pcapng" ] || { echo "FAIL: empty capture" >&2; exit 1; }
  echo "OK (install tshark to look inside)" >&2
fi

step "sockets and ps through the agents"
"$PLUGIN" --context "$CTX" -n "$NS" sockets pod/web --listening | tee "$TMP/sockets.out"
grep -q ':8080' "$TMP/sockets.out" || { echo "FAIL: sockets does not list the pod's listener" >&2; exit 1; }
"$PLUGIN" --context "$CTX" ps | grep "$NS/web" || { echo "FAIL: ps does not list pod/web" >&2; exit 1; }
