// Package runtime resolves container references (docker:NAME, podman:ID,
// container:ID) to the network namespace of the container, with the
// labels a user knows it by: runtime, container ID and name, state, the
// pinned netns path and the PID.
//
// One small interface, [Runtime], stands for one container runtime's API;
// each runtime has one implementation. Docker and podman are both reached
// through the Docker Engine API (podman serves a compatible one) with the
// moby client library; their unix sockets are found without configuration
// (see [Endpoints]) and an explicit endpoint overrides them.
//
// # Privileges
//
// Talking to a runtime needs access to its socket: root, or membership of
// the docker group for Docker, or the rootless podman user's own socket.
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
