package runtime

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"

	"github.com/netobs/netobs/nsjoin"
)

// Lookup finds the container ref names and returns its Detailed record:
// a full ID, else a name, else a unique ID prefix, among the containers of
// ref's runtime (every runtime that answers for container:ID). It fails
// with ErrNotFound, an AmbiguousError listing the matches, or an
// UnreachableError naming the sockets tried.
func Lookup(ctx context.Context, ref Ref, o Options) (Container, error) {
	rts, all, err := connectAndList(ctx, ref, o)
	if err != nil {
		return Container{}, err
	}
	defer closeRuntimes(rts)
	var c Container
	if ref.Pod {
		var cs []Container
		cs, err = matchPods(ref, all)
		if err == nil && len(cs) > 1 {
			// A glob names one pod only where one namespace is taken;
			// LookupAll expands it.
			err = &AmbiguousError{Ref: ref.String(), Matches: cs, Pods: true}
		}
		if err == nil {
			c = cs[0]
		}
	} else {
		if ref.Runtime == "containerd" {
			all = inContainerdNamespace(all, ref.Namespace)
		}
		c, err = match(ref.String(), ref.Key, all)
	}
	if err != nil {
		return Container{}, err
	}
	return inspect(ctx, rts, ref, c)
}

// connectAndList connects to ref's runtimes and lists the containers of
// them all; the caller closes the runtimes with closeRuntimes.
func connectAndList(ctx context.Context, ref Ref, o Options) ([]Runtime, []Container, error) {
	rts, err := Connect(ctx, ref.Runtime, o)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", ref, err)
	}
	listed, err := listAll(ctx, rts)
	if err != nil {
		closeRuntimes(rts)
		return nil, nil, fmt.Errorf("%s: %w", ref, err)
	}
	all := make([]Container, len(listed))
	for i, l := range listed {
		all[i] = l.Container
	}
	return rts, all, nil
}

// listed is a container and the runtime that listed it.
type listed struct {
	Container
	rt Runtime
}

// listAll lists the containers of every runtime in rts. A container two
// runtimes list (by its full ID: the CRI's and Docker's containers are
// also containerd's, in its namespaces k8s.io and moby) is the first
// runtime's only, so container:ID is not ambiguous between them.
func listAll(ctx context.Context, rts []Runtime) ([]listed, error) {
	var all []listed
	owner := map[string]Runtime{}
	for _, rt := range rts {
		cs, err := rt.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if o, ok := owner[c.ID]; ok && o != rt {
				continue
			}
			owner[c.ID] = rt
			all = append(all, listed{c, rt})
		}
	}
	return all, nil
}

// inContainerdNamespace keeps the containerd containers of namespace ns.
func inContainerdNamespace(cs []Container, ns string) []Container {
	var out []Container
	for _, c := range cs {
		if c.Runtime == "containerd" && c.ContainerdNamespace == ns {
			out = append(out, c)
		}
	}
	return out
}

// detail returns the Detailed record of c, a container rt listed: c itself
// if the listing told everything, else what rt.Inspect says.
func detail(ctx context.Context, rt Runtime, c Container) (Container, error) {
	if c.Detailed {
		return c, nil
	}
	return rt.Inspect(ctx, c.ID)
}

func closeRuntimes(rts []Runtime) {
	for _, rt := range rts {
		rt.Close()
	}
}

func inspect(ctx context.Context, rts []Runtime, ref Ref, c Container) (Container, error) {
	for _, rt := range rts {
		if rt.Name() == c.Runtime && rt.Endpoint() == c.Endpoint {
			d, err := detail(ctx, rt, c)
			if err != nil {
				return Container{}, fmt.Errorf("%s: %w", ref, err)
			}
			return d, nil
		}
	}
	return c, nil
}

// LookupAll is Lookup for a reference that may name many: a pod glob
// (pod:default/web-*) gives every matching pod's ready sandbox, each
// Detailed, sorted by namespace and name; any other reference gives
// what Lookup gives. No match is ErrNotFound.
func LookupAll(ctx context.Context, ref Ref, o Options) ([]Container, error) {
	if !ref.IsGlob() {
		c, err := Lookup(ctx, ref, o)
		if err != nil {
			return nil, err
		}
		return []Container{c}, nil
	}
	rts, all, err := connectAndList(ctx, ref, o)
	if err != nil {
		return nil, err
	}
	defer closeRuntimes(rts)
	cs, err := matchPods(ref, all)
	if err != nil {
		return nil, err
	}
	for i, c := range cs {
		if cs[i], err = inspect(ctx, rts, ref, c); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// matchPods picks the pod sandboxes whose pod name and namespace match
// ref (globs allowed). Of the sandboxes of one pod (a pod's sandbox is
// made anew when it restarts) the ready one wins, else the newest
// listed. A plain name found in several namespaces is ambiguous.
func matchPods(ref Ref, cs []Container) ([]Container, error) {
	type key struct{ ns, name string }
	byPod := map[key]Container{}
	var order []key
	for _, c := range cs {
		if c.Kind != KindPod {
			continue
		}
		if ok, _ := path.Match(ref.Key, c.Pod); !ok {
			continue
		}
		if ref.Namespace != "" {
			if ok, _ := path.Match(ref.Namespace, c.PodNamespace); !ok {
				continue
			}
		}
		k := key{c.PodNamespace, c.Pod}
		old, seen := byPod[k]
		if !seen {
			order = append(order, k)
		}
		if !seen || (c.Running && !old.Running) {
			byPod[k] = c
		}
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("%w %q: no pod sandbox of that name on this node's CRI runtime", ErrNotFound, ref.String())
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].ns != order[j].ns {
			return order[i].ns < order[j].ns
		}
		return order[i].name < order[j].name
	})
	out := make([]Container, 0, len(order))
	for _, k := range order {
		out = append(out, byPod[k])
	}
	if len(out) > 1 && !ref.IsGlob() {
		return nil, &AmbiguousError{Ref: ref.String(), Matches: out, Pods: true}
	}
	return out, nil
}

// List returns the containers of runtime ("" for every runtime that
// answers), each Detailed: the netns path and PID of running ones known.
func List(ctx context.Context, runtime string, o Options) ([]Container, error) {
	rts, err := Connect(ctx, runtime, o)
	if err != nil {
		return nil, err
	}
	defer closeRuntimes(rts)
	cs, err := listAll(ctx, rts)
	if err != nil {
		return nil, err
	}
	var all []Container
	// podman's command line inspects them all in one run, not one each;
	// if one went away since the listing, each is asked alone below.
	batched := map[Runtime]bool{}
	for _, rt := range rts {
		p, ok := rt.(*podmanCLI)
		if !ok {
			continue
		}
		var ids []string
		for _, c := range cs {
			if c.rt == rt {
				ids = append(ids, c.ID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		ds, err := p.inspectAll(ctx, ids)
		if err == nil {
			all = append(all, ds...)
			batched[rt] = true
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	for _, c := range cs {
		if batched[c.rt] {
			continue
		}
		d, err := detail(ctx, c.rt, c.Container)
		if errors.Is(err, ErrNotFound) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, err
		}
		all = append(all, d)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Runtime != all[j].Runtime {
			return all[i].Runtime < all[j].Runtime
		}
		if all[i].ContainerdNamespace != all[j].ContainerdNamespace {
			return all[i].ContainerdNamespace < all[j].ContainerdNamespace
		}
		return all[i].Name < all[j].Name
	})
	return all, nil
}

// Open resolves a container reference (docker:NAME|ID, podman:NAME|ID,
// cri:ID, containerd:[NAMESPACE/]ID, pod:[NAMESPACE/]NAME, container:ID) and opens the container's network namespace; see Lookup
// and OpenNS. The caller closes the namespace.
func Open(ctx context.Context, s string, o Options) (*nsjoin.NS, Container, error) {
	ref, err := ParseRef(s)
	if err != nil {
		return nil, Container{}, err
	}
	c, err := Lookup(ctx, ref, o)
	if err != nil {
		return nil, Container{}, err
	}
	ns, err := OpenNS(c, nsjoin.Net)
	if err != nil {
		return nil, c, fmt.Errorf("%s: %w", s, err)
	}
	return ns, c, nil
}

// OpenNS opens a namespace of type t of the running container c. For the
// network namespace it prefers the runtime's pinned netns file, which
// outlives a restart of the container's process, and falls back to the
// PID (held by a pidfd, so a reused PID is detected). Other types are
// opened through the PID. A container that is not running fails with
// ErrNotRunning.
func OpenNS(c Container, t nsjoin.Type) (*nsjoin.NS, error) {
	if !c.Running {
		state := c.State
		if state == "" {
			state = "not running"
		}
		return nil, fmt.Errorf("%w: %s container %q (%s) is %s; start it first", ErrNotRunning, c.Runtime, c.Name, shortID(c.ID), state)
	}
	var pathErr error
	if t == nsjoin.Net && c.Netns != "" {
		ns, err := nsjoin.OpenFile(c.Netns)
		if err == nil && ns.Type() == nsjoin.Net {
			return ns, nil
		}
		if err == nil {
			ns.Close()
			err = fmt.Errorf("%s: %w", c.Netns, nsjoin.ErrWrongType)
		}
		pathErr = err
	}
	if c.PID <= 0 {
		if pathErr != nil {
			return nil, pathErr
		}
		return nil, fmt.Errorf("%w: %s reports neither a netns path nor a PID for %q", ErrNotRunning, c.Runtime, c.Name)
	}
	if c.hostRoot != "" && c.hostRoot != "/" {
		// The host's PIDs mean nothing to pidfd_open in a container's own
		// PID namespace: the host's /proc is the way in.
		return openTypedFile(HostPath(c.hostRoot, "/proc/"+strconv.Itoa(c.PID)+"/ns/"+t.String()), t)
	}
	return nsjoin.OpenType(strconv.Itoa(c.PID), t)
}

// openTypedFile opens a namespace file that must be of type t.
func openTypedFile(path string, t nsjoin.Type) (*nsjoin.NS, error) {
	ns, err := nsjoin.OpenFile(path)
	if err != nil {
		return nil, err
	}
	if ns.Type() != t {
		ns.Close()
		return nil, fmt.Errorf("%s: %w", path, nsjoin.ErrWrongType)
	}
	return ns, nil
}

// Refs returns a reference (RUNTIME:NAME, pod:NS/NAME, cri:ID,
// containerd:NS/ID) for every running container of every runtime that
// answers, for shell completion: one listing request per runtime (per
// containerd namespace), no error if none answers.
func Refs(ctx context.Context, o Options) []string {
	rts, err := Connect(ctx, "", o)
	if err != nil {
		return nil
	}
	defer closeRuntimes(rts)
	var refs []string
	seen := map[string]bool{} // as listAll: a container is its first runtime's
	for _, rt := range rts {
		cs, _ := rt.List(ctx)
		for _, c := range cs {
			dup := seen[c.ID]
			seen[c.ID] = true
			switch {
			case dup:
			case !c.Running || c.Name == "":
			case c.Runtime == "cri" && c.Kind != KindPod:
				// Container names repeat across pods; the ID is the key.
				refs = append(refs, "cri:"+shortID(c.ID))
			default:
				refs = append(refs, c.Label())
			}
		}
	}
	sort.Strings(refs)
	return refs
}
