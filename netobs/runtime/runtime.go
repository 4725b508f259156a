package runtime

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strings"
	"unicode"
)

// Container is what a runtime says about one container.
type Container struct {
	// Runtime is the runtime's name in references: "docker", "podman",
	// "cri" (containerd's CRI plugin, CRI-O) or "containerd" (its own API).
	Runtime string `json:"runtime"`
	// Kind is "pod" for a CRI pod sandbox, "" for a container.
	Kind string `json:"kind,omitempty"`
	// Endpoint is the API address the runtime answered on.
	Endpoint string `json:"endpoint,omitempty"`
	// ID is the full container ID.
	ID string `json:"container_id"`
	// Name is the container's name, without Docker's leading '/'; for
	// containerd, nerdctl's name label if there is one, else the ID.
	Name string `json:"container"`
	// ContainerdNamespace is the containerd namespace (default, k8s.io,
	// moby...) of a containerd container; its ID is unique only there.
	ContainerdNamespace string `json:"containerd_namespace,omitempty"`
	// Pod and PodNamespace name the pod the container belongs to, if any.
	Pod          string `json:"pod,omitempty"`
	PodNamespace string `json:"pod_namespace,omitempty"`
	// PodSandboxID is the CRI pod sandbox a CRI container belongs to; its
	// network namespace is the sandbox's.
	PodSandboxID string `json:"pod_sandbox_id,omitempty"`
	// Labels are the runtime's labels of the container or sandbox.
	Labels map[string]string `json:"labels,omitempty"`
	// State is the runtime's word for it: running, exited, created, paused...
	State string `json:"state"`
	// Running is true if the container has a process, so a namespace.
	Running bool `json:"running"`
	// Netns is the pinned network namespace file (Docker's SandboxKey,
	// a CRI sandbox's or containerd container's runtime spec), empty if
	// the runtime reports none;
	// under Options.HostRoot if one was given.
	Netns string `json:"netns,omitempty"`
	// PID is the container's init process, 0 if it is not running.
	PID int `json:"pid,omitempty"`
	// NetworkMode is the runtime's network mode: bridge, host, none,
	// container:ID, or a network's name.
	NetworkMode string `json:"network_mode,omitempty"`
	// Addresses are the container's addresses on the runtime's networks.
	Addresses []netip.Prefix `json:"addresses,omitempty"`
	// Detailed is true when Netns and PID are known: the runtime was
	// asked about this container alone, or its listing tells them
	// (containerd); false for a listing's summary.
	Detailed bool `json:"-"`
	// joinsPID is the process whose network namespace a containerd
	// container's spec joins (/proc/PID/ns/net), 0 if none.
	joinsPID int
	// hostRoot is Options.HostRoot of the lookup: Netns is already under
	// it, the PID is read under its /proc.
	hostRoot string
}

// HostNetwork reports whether the container uses the host's network
// namespace (docker run --network host).
func (c Container) HostNetwork() bool { return c.NetworkMode == "host" }

// SharesWith returns the container whose network namespace c joined
// (docker run --network container:X), or "".
func (c Container) SharesWith() string {
	s, ok := strings.CutPrefix(c.NetworkMode, "container:")
	if !ok {
		return ""
	}
	return s
}

// SharesPod reports whether c is a CRI container, which has no network
// namespace of its own but its pod sandbox's.
func (c Container) SharesPod() bool { return c.Kind == "" && c.PodSandboxID != "" }

// Label is how outputs name the container: RUNTIME:NAME,
// pod:NAMESPACE/NAME for a pod sandbox, containerd:NAMESPACE/SHORTID for a
// containerd container.
func (c Container) Label() string {
	switch {
	case c.Kind == KindPod:
		return "pod:" + c.PodNamespace + "/" + c.Pod
	case c.Runtime == "containerd":
		return "containerd:" + c.ContainerdNamespace + "/" + shortID(c.ID)
	}
	return c.Runtime + ":" + c.Name
}

// KindPod is Container.Kind of a CRI pod sandbox.
const KindPod = "pod"

// Runtime is one container runtime's API. Its List and Inspect may be called
// from several goroutines at once (netobs asks runtimes concurrently).
type Runtime interface {
	// Name is the runtime's name in references ("docker").
	Name() string
	// Endpoint is the address of the API, as tried.
	Endpoint() string
	// List returns every container the runtime knows, running or not.
	// Entries need not be Detailed.
	List(ctx context.Context) ([]Container, error)
	// Inspect returns the Detailed record of the container with this
	// full ID, or an error wrapping ErrNotFound.
	Inspect(ctx context.Context, id string) (Container, error)
	// Close releases the connection; it is idempotent.
	Close() error
}

var (
	// ErrBadRef: a malformed container reference.
	ErrBadRef = errors.New("malformed container reference")
	// ErrNotFound: no container matches the reference.
	ErrNotFound = errors.New("no such container")
	// ErrAmbiguous: several containers match; see AmbiguousError.
	ErrAmbiguous = errors.New("ambiguous container reference")
	// ErrNotRunning: the container exists but has no process, so no
	// network namespace.
	ErrNotRunning = errors.New("container is not running")
	// ErrNoRuntime: no runtime answered on any endpoint; see
	// UnreachableError.
	ErrNoRuntime = errors.New("container runtime not reachable")
)

// AmbiguousError lists the containers a reference matched.
type AmbiguousError struct {
	Ref     string
	Matches []Container
	// Pods is true when a pod name was found in several namespaces, or a
	// glob matched several pods where one is wanted.
	Pods bool
}

func (e *AmbiguousError) Error() string {
	var m []string
	if e.Pods {
		for _, c := range e.Matches {
			m = append(m, c.Label())
		}
		return fmt.Sprintf("%q matches %d pods: %s; name one as pod:NAMESPACE/NAME", e.Ref, len(e.Matches), strings.Join(m, ", "))
	}
	for _, c := range e.Matches {
		id := c.Runtime + ":" + shortID(c.ID)
		if c.Runtime == "containerd" {
			id = c.Label()
		}
		m = append(m, fmt.Sprintf("%s (%s)", id, c.Name))
	}
	return fmt.Sprintf("%q matches %d containers: %s; give more of the ID or the name", e.Ref, len(e.Matches), strings.Join(m, ", "))
}

func (e *AmbiguousError) Is(target error) bool { return target == ErrAmbiguous }

// UnreachableError says which endpoints were tried for which runtimes.
type UnreachableError struct {
	// Runtime is the runtime asked for, "" for any.
	Runtime string
	// Tried holds one entry per endpoint with why it failed.
	Tried []string
}

func (e *UnreachableError) Error() string {
	what := e.Runtime
	switch what {
	case "":
		what = "container runtime (docker, podman, CRI, containerd)"
	case "cri":
		what = "CRI runtime (containerd, CRI-O)"
	}
	if len(e.Tried) == 0 {
		return fmt.Sprintf("no %s API socket found; start the daemon or give --runtime-endpoint", what)
	}
	return fmt.Sprintf("no %s daemon answered (tried %s); start it or give --runtime-endpoint", what, strings.Join(e.Tried, "; "))
}

func (e *UnreachableError) Is(target error) bool { return target == ErrNoRuntime }

// Runtimes names the runtimes a reference can name, in the order
// container:ID tries them. A container that two of them list (Docker's
// and the CRI's containers are containerd's too, in its namespaces moby
// and k8s.io) is the first one's.
var Runtimes = []string{"docker", "podman", "cri", "containerd"}

// Ref is a parsed container reference.
type Ref struct {
	// Runtime is "docker", "podman", "cri" or "containerd"; "" for
	// container:ID (any runtime).
	Runtime string
	// Key is the name or ID (prefix) to look up; for a pod, the pod's
	// name, which may be a glob (path.Match syntax).
	Key string
	// Pod is true for pod:[NAMESPACE/]NAME, a CRI pod sandbox named by its
	// io.kubernetes.pod.name and io.kubernetes.pod.namespace labels.
	Pod bool
	// Namespace is the pod's Kubernetes namespace, "" for any; for
	// containerd:[NAMESPACE/]ID the containerd namespace, "default" if
	// none is given.
	Namespace string
}

func (r Ref) String() string {
	switch {
	case r.Pod && r.Namespace != "":
		return "pod:" + r.Namespace + "/" + r.Key
	case r.Pod:
		return "pod:" + r.Key
	case r.Runtime == "":
		return "container:" + r.Key
	case r.Runtime == "containerd":
		return "containerd:" + r.Namespace + "/" + r.Key
	}
	return r.Runtime + ":" + r.Key
}

// IsGlob reports whether the reference names pods by a pattern, so may
// name many.
func (r Ref) IsGlob() bool {
	return r.Pod && (strings.ContainsAny(r.Key, globChars) || strings.ContainsAny(r.Namespace, globChars))
}

const globChars = "*?["

// IsRef reports whether s has the form of a container reference
// (RUNTIME:KEY with a known runtime, or container:KEY); ParseRef then
// says whether it is well formed.
func IsRef(s string) bool {
	prefix, _, ok := strings.Cut(s, ":")
	if !ok {
		return false
	}
	return prefix == "container" || prefix == "pod" || knownRuntime(prefix)
}

func knownRuntime(name string) bool {
	for _, r := range Runtimes {
		if r == name {
			return true
		}
	}
	return false
}

// ParseRef parses docker:NAME|ID, podman:NAME|ID, cri:ID and container:ID. A key is
// a container name or a hexadecimal ID prefix: one to 255 bytes of
// letters, digits, '_', '.' and '-' (Docker's name alphabet); Docker's
// leading '/' of names is accepted and dropped.
//
// pod:[NAMESPACE/]NAME names a CRI pod sandbox; NAME and NAMESPACE may be
// globs ('*', '?', '[...]'), and may then name many (see LookupAll).
//
// containerd:[NAMESPACE/]ID names a container through containerd's own
// API in a containerd namespace, "default" (nerdctl's) if none is given;
// NAMESPACE is a containerd identifier (letters, digits, '.', '_', '-').
func ParseRef(s string) (Ref, error) {
	if rest, ok := strings.CutPrefix(s, "pod:"); ok {
		return parsePodRef(s, rest)
	}
	if rest, ok := strings.CutPrefix(s, "containerd:"); ok {
		return parseContainerdRef(s, rest)
	}
	prefix, key, ok := strings.Cut(s, ":")
	if !ok || !(prefix == "container" || knownRuntime(prefix)) {
		return Ref{}, fmt.Errorf("%w %q: want docker:NAME|ID, podman:NAME|ID, cri:ID, containerd:[NAMESPACE/]ID, pod:[NAMESPACE/]NAME or container:ID", ErrBadRef, s)
	}
	r := Ref{Key: strings.TrimPrefix(key, "/")}
	if prefix != "container" {
		r.Runtime = prefix
	}
	if r.Key == "" {
		return Ref{}, fmt.Errorf("%w %q: name a container after %q", ErrBadRef, s, prefix+":")
	}
	if len(r.Key) > 255 {
		return Ref{}, fmt.Errorf("%w: %d bytes after %q, the limit is 255", ErrBadRef, len(r.Key), prefix+":")
	}
	if !validKey(r.Key) {
		return Ref{}, fmt.Errorf("%w %q: a container name or ID has only letters, digits, '_', '.' and '-'", ErrBadRef, s)
	}
	return r, nil
}

// validKey reports whether s has only Docker's name alphabet: ASCII
// letters, digits, '_', '.' and '-'.
func validKey(s string) bool {
	for _, c := range s {
		if c > unicode.MaxASCII || !(c == '_' || c == '.' || c == '-' || unicode.IsLetter(c) || unicode.IsDigit(c)) {
			return false
		}
	}
	return true
}

// maxContainerdID is containerd's limit on identifiers (namespaces,
// container IDs).
const maxContainerdID = 76

func parseContainerdRef(s, rest string) (Ref, error) {
	r := Ref{Runtime: "containerd", Namespace: "default", Key: rest}
	if ns, id, ok := strings.Cut(rest, "/"); ok {
		r.Namespace, r.Key = ns, id
		if ns == "" || strings.Contains(id, "/") {
			return Ref{}, fmt.Errorf("%w %q: want containerd:NAMESPACE/ID or containerd:ID", ErrBadRef, s)
		}
	}
	if r.Key == "" {
		return Ref{}, fmt.Errorf("%w %q: name a container after \"containerd:\" (containerd:NAMESPACE/ID or containerd:ID)", ErrBadRef, s)
	}
	if len(r.Namespace) > maxContainerdID || len(r.Key) > 255 {
		return Ref{}, fmt.Errorf("%w: %d bytes after \"containerd:\", the limits are %d for the namespace and 255 for the ID", ErrBadRef, len(rest), maxContainerdID)
	}
	if !validKey(r.Namespace) || !validKey(r.Key) {
		return Ref{}, fmt.Errorf("%w %q: a containerd namespace or container ID has only letters, digits, '_', '.' and '-'", ErrBadRef, s)
	}
	return r, nil
}

func parsePodRef(s, rest string) (Ref, error) {
	r := Ref{Runtime: "cri", Pod: true, Key: rest}
	if ns, name, ok := strings.Cut(rest, "/"); ok {
		r.Namespace, r.Key = ns, name
		if ns == "" {
			return Ref{}, fmt.Errorf("%w %q: want pod:NAMESPACE/NAME or pod:NAME", ErrBadRef, s)
		}
	}
	if r.Key == "" {
		return Ref{}, fmt.Errorf("%w %q: name a pod after \"pod:\" (pod:NAMESPACE/NAME or pod:NAME)", ErrBadRef, s)
	}
	if len(rest) > 253+1+63 {
		return Ref{}, fmt.Errorf("%w: %d bytes after \"pod:\", the limit is %d", ErrBadRef, len(rest), 253+1+63)
	}
	for _, part := range []string{r.Namespace, r.Key} {
		for _, c := range part {
			if c > unicode.MaxASCII || !(c == '.' || c == '-' || c == '_' || strings.ContainsRune(globChars+"]", c) || unicode.IsLetter(c) || unicode.IsDigit(c)) {
				return Ref{}, fmt.Errorf("%w %q: a pod or namespace name has only letters, digits, '.', '-' and glob characters (*?[])", ErrBadRef, s)
			}
		}
		if _, err := path.Match(part, ""); err != nil {
			return Ref{}, fmt.Errorf("%w %q: bad glob", ErrBadRef, s)
		}
	}
	return r, nil
}

// match picks the container key names among cs, as docker does: a full
// ID, else a name, else a unique ID prefix. Several exact names (from
// several runtimes) or several prefix matches are ambiguous.
func match(ref string, key string, cs []Container) (Container, error) {
	var byName, byPrefix []Container
	for _, c := range cs {
		switch {
		case c.ID == key:
			return c, nil
		case c.Name == key:
			byName = append(byName, c)
		case strings.HasPrefix(c.ID, key):
			byPrefix = append(byPrefix, c)
		}
	}
	for _, set := range [][]Container{byName, byPrefix} {
		switch len(set) {
		case 0:
			continue
		case 1:
			return set[0], nil
		}
		sort.Slice(set, func(i, j int) bool { return set[i].ID < set[j].ID })
		return Container{}, &AmbiguousError{Ref: ref, Matches: set}
	}
	return Container{}, fmt.Errorf("%w %q", ErrNotFound, ref)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
