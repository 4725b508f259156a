// Package runtime resolves container references (docker:NAME, podman:ID,
// cri:ID, containerd:NAMESPACE/ID, pod:NAMESPACE/NAME, container:ID) to the
// network namespace of the container or pod, with the labels a user knows it by: runtime, container
// ID and name, pod and its namespace, state, the pinned netns path and the
// PID. Pod globs ([LookupAll]) and label selectors ([Select]) name many.
//
// One small interface, [Runtime], stands for one container runtime's API;
// each runtime has one implementation. Docker and podman are both reached
// through the Docker Engine API (podman serves a compatible one) with the
// moby client library; their unix sockets are found without configuration
// (see [Endpoints]) and an explicit endpoint overrides them. Where no
// podman socket answers (podman has no daemon; its API service is often
// off), podman's own command line is run instead: `podman ps --all
// --format json` and `podman container inspect`, bounded by a timeout,
// whose JSON is parsed as the runtime's answer.
//
// CRI runtimes (containerd's CRI plugin, CRI-O) are reached through the
// Kubernetes CRI (k8s.io/cri-api over gRPC on their unix socket), which
// works on a node without the API server: pods are found by the
// io.kubernetes.pod.name and .namespace labels of their sandboxes, and a
// pod's network namespace is the pinned file of its sandbox's runtime spec
// (PodSandboxStatus verbose info). A pod's containers resolve to their
// pod's namespace.
//
// containerd is also reached through its own gRPC API (the v1 containers,
// tasks and namespaces services of github.com/containerd/containerd/api,
// the request's namespace in the containerd-namespace metadata), for
// containers made without the CRI (nerdctl, ctr: namespace default) and
// Kubernetes' (k8s.io). A container's network namespace is the file its
// OCI runtime spec pins, else its task's PID. A container that Docker or
// the CRI lists too (they are containerd's, in namespaces moby and k8s.io)
// is theirs in listings of every runtime.
//
// # Privileges
//
// Talking to a runtime needs access to its socket: root, or membership of
// the docker group for Docker, or the rootless podman user's own socket;
// containerd's and the CRI's sockets are root's.
// Opening the namespace ([Open]) needs what nsjoin needs to open a
// namespace file or a process's namespace: root (CAP_SYS_PTRACE over the
// container's process for the PID fallback).
//
// # Threads and namespaces
//
// Nothing here enters a namespace: the package asks the runtime where the
// namespace is and opens it with nsjoin, from the caller's own namespace.
// A runtime's answer is trusted no further than its socket: names are
// reported as given and quoted where they are printed.
package runtime
