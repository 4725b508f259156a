package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// EnvEndpoint names the environment variable that, like
// --runtime-endpoint, overrides socket discovery with one API address.
const EnvEndpoint = "NETOBS_RUNTIME_ENDPOINT"

// Options say how to reach the runtimes.
type Options struct {
	// Endpoint, if not empty, is the only API address tried: unix:///PATH,
	// a socket PATH, or tcp://HOST:PORT. Empty means the environment
	// variable EnvEndpoint, else the usual sockets (see Endpoints).
	Endpoint string
	// HostRoot is the directory the host's root is mounted under when
	// netobs runs in a container with the host's /proc and /run mounted
	// (for example /host); "" or "/" means netobs runs on the host. The
	// usual sockets, the runtimes' netns paths and /proc/PID are looked up
	// under it (see HostPath); an explicit Endpoint is taken as given.
	HostRoot string
}

// HostPath is where the host's path p is seen from netobs: p itself
// without a host root, else p under root, with /var/run/ read as /run/
// when root has no var/run (a container that mounts only the host's /run
// and /proc).
func HostPath(root, p string) string {
	if root == "" || root == "/" || !filepath.IsAbs(p) {
		return p
	}
	q := filepath.Join(root, p)
	if rest, ok := strings.CutPrefix(p, "/var/run/"); ok {
		if _, err := os.Stat(filepath.Join(root, "var/run")); err != nil {
			q = filepath.Join(root, "run", rest)
		}
	}
	return q
}

func (o Options) endpoint() string {
	if o.Endpoint != "" {
		return o.Endpoint
	}
	return os.Getenv(EnvEndpoint)
}

// Endpoint is one API address of one runtime.
type Endpoint struct {
	// Runtime is the runtime expected there; "" if it must be asked.
	Runtime string
	// Address is unix:///PATH or tcp://HOST:PORT.
	Address string
}

// Endpoints returns the API addresses where runtime ("" for every one) is
// usually found, most likely first: $DOCKER_HOST, /var/run/docker.sock and
// /run/docker.sock for Docker; $CONTAINER_HOST, /run/podman/podman.sock and
// the rootless $XDG_RUNTIME_DIR/podman/podman.sock for podman;
// $CONTAINER_RUNTIME_ENDPOINT (crictl's), containerd's, CRI-O's, and the
// containerd sockets of k3s and RKE2, k0s and microk8s for the CRI; the
// same containerd sockets (ContainerdSockets) for containerd's own API.
func Endpoints(runtime string) []Endpoint { return endpoints(runtime, "") }

// endpoints is Endpoints with the built-in socket paths under a host root.
func endpoints(runtime, root string) []Endpoint {
	var eps []Endpoint
	add := func(rt, addr string) {
		if addr == "" || (runtime != "" && runtime != rt) {
			return
		}
		if path, ok := strings.CutPrefix(addr, "unix://"); ok {
			addr = "unix://" + HostPath(root, path)
		}
		for _, e := range eps {
			if e.Address == addr {
				return
			}
		}
		eps = append(eps, Endpoint{Runtime: rt, Address: addr})
	}
	// The environment's addresses are the caller's own view, not the
	// host's; they are taken as given.
	env := func(rt, addr string) {
		if addr != "" && (runtime == "" || runtime == rt) {
			eps = append(eps, Endpoint{Runtime: rt, Address: addr})
		}
	}
	env("docker", os.Getenv("DOCKER_HOST"))
	add("docker", "unix:///var/run/docker.sock")
	add("docker", "unix:///run/docker.sock")
	env("podman", os.Getenv("CONTAINER_HOST"))
	add("podman", "unix:///run/podman/podman.sock")
	xdg := os.Getenv("XDG_RUNTIME_DIR")
	if xdg == "" && os.Getuid() != 0 {
		xdg = "/run/user/" + strconv.Itoa(os.Getuid())
	}
	if xdg != "" {
		add("podman", "unix://"+xdg+"/podman/podman.sock")
	}
	env("cri", normalize(os.Getenv("CONTAINER_RUNTIME_ENDPOINT")))
	for _, s := range CRISockets {
		add("cri", "unix://"+s)
	}
	for _, s := range ContainerdSockets {
		add("containerd", "unix://"+s)
	}
	return eps
}

// ContainerdSockets are where containerd listens, most common first: its
// own default (Docker's containerd too), then the distributions that run
// their own.
var ContainerdSockets = []string{
	"/run/containerd/containerd.sock",
	"/run/k3s/containerd/containerd.sock", // k3s and RKE2
	"/run/k0s/containerd.sock",
	"/var/snap/microk8s/common/run/containerd.sock",
}

// CRISockets are where CRI runtimes listen, most common first: containerd's
// (ContainerdSockets) with CRI-O's after the usual one.
var CRISockets = append([]string{ContainerdSockets[0], "/run/crio/crio.sock"}, ContainerdSockets[1:]...)

// normalize turns a bare socket path into a unix:// address.
func normalize(addr string) string {
	if strings.HasPrefix(addr, "/") {
		return "unix://" + addr
	}
	return addr
}

// Connect returns the runtimes that answer: for a named runtime the first
// of its endpoints that answers, for "" every runtime that answers (a
// socket reached by two paths counted once per runtime: containerd's
// socket serves both the CRI and its own API). An explicit endpoint for ""
// is asked as the Docker API or the CRI, and as containerd's API. Without
// an explicit endpoint, podman (asked for by name or as any runtime) is
// reached through its own command line when no podman API socket answers.
// It fails with an UnreachableError if none answers. The caller closes
// what it gets.
func Connect(ctx context.Context, runtime string, o Options) ([]Runtime, error) {
	var eps []Endpoint
	if addr := o.endpoint(); addr != "" {
		eps = []Endpoint{{Runtime: runtime, Address: normalize(addr)}}
		if runtime == "" {
			eps = append(eps, Endpoint{Runtime: "containerd", Address: normalize(addr)})
		}
	} else {
		eps = endpoints(runtime, o.HostRoot)
	}
	type socket struct {
		runtime string
		fi      os.FileInfo
	}
	type probe struct {
		ep    Endpoint
		path  string // the socket file of a unix:// address
		skip  bool   // no socket, or one asked already for this runtime
		rt    Runtime
		tried string // why it did not answer
	}
	var seen []socket
	probes := make([]probe, len(eps))
	for i, ep := range eps {
		p := &probes[i]
		p.ep = ep
		path, ok := strings.CutPrefix(ep.Address, "unix://")
		if !ok {
			continue
		}
		p.path = path
		fi, err := os.Stat(path)
		if err != nil {
			p.skip, p.tried = true, fmt.Sprintf("%s: %v", path, reason(err))
			continue
		}
		for _, s := range seen {
			p.skip = p.skip || (s.runtime == ep.Runtime && os.SameFile(s.fi, fi))
		}
		if !p.skip {
			seen = append(seen, socket{ep.Runtime, fi})
		}
	}
	ask := func(p *probe) {
		if p.path != "" {
			// The client library reports a refused connection without
			// its cause; a plain connect first says why.
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", p.path)
			if err != nil {
				p.tried = fmt.Sprintf("%s: %v", p.path, reason(err))
				return
			}
			conn.Close()
		}
		rt, err := dial(ctx, p.ep, o.HostRoot)
		if err != nil {
			p.tried = fmt.Sprintf("%s: %v", p.ep.Address, reason(err))
			return
		}
		p.rt = rt
	}
	if runtime == "" {
		// Every runtime is wanted: ask them all at once.
		var wg sync.WaitGroup
		for i := range probes {
			if !probes[i].skip {
				wg.Add(1)
				go func() { defer wg.Done(); ask(&probes[i]) }()
			}
		}
		wg.Wait()
	} else {
		// The first that answers is the one: ask in order.
		for i := range probes {
			if !probes[i].skip {
				if ask(&probes[i]); probes[i].rt != nil {
					probes = probes[:i+1]
					break
				}
			}
		}
	}
	var (
		rts   []Runtime
		tried []string
	)
	for _, p := range probes {
		if p.rt != nil {
			rts = append(rts, p.rt)
		} else if p.tried != "" {
			tried = append(tried, p.tried)
		}
	}
	if wantPodmanCLI(runtime, o, rts) {
		if bin, err := lookPodman(o); err == nil {
			rts = append(rts, &podmanCLI{bin: bin})
		} else if runtime == "podman" {
			tried = append(tried, "podman command: "+err.Error())
		}
	}
	if len(rts) == 0 {
		return nil, &UnreachableError{Runtime: runtime, Tried: tried}
	}
	return rts, nil
}

// dial connects to the runtime at ep; an endpoint of unknown runtime is
// tried as the Docker API, then as the CRI.
func dial(ctx context.Context, ep Endpoint, root string) (Runtime, error) {
	switch ep.Runtime {
	case "cri":
		return dialCRI(ctx, ep, root)
	case "containerd":
		return dialContainerd(ctx, ep, root)
	case "":
		// gRPC first: an HTTP/1 server refuses the HTTP/2 preface
		// cleanly, while the HTTP/2 frames a gRPC server sends to an
		// HTTP/1 client make net/http log to stderr.
		c, err := dialCRI(ctx, ep, root)
		if err == nil || errors.Is(err, errGRPCNotCRI) {
			return c, err
		}
		return dialDockerAPI(ctx, ep, root)
	}
	return dialDockerAPI(ctx, ep, root)
}

// reason shortens the usual failures to what the user can act on.
func reason(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such socket"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (daemon not running)"
	case errors.Is(err, os.ErrPermission):
		return "permission denied (run as root or as a member of the socket's group)"
	}
	return err.Error()
}
