package runtime

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/netobs/netobs/nsjoin"
)

// Lookup finds the container ref names and returns its Detailed record:
// a full ID, else a name, else a unique ID prefix, among the containers of
// ref's runtime (every runtime that answers for container:ID). It fails
// with ErrNotFound, an AmbiguousError listing the matches, or an
// UnreachableError naming the sockets tried.
func Lookup(ctx context.Context, ref Ref, o Options) (Container, error) {
	rts, err := Connect(ctx, ref.Runtime, o)
	if err != nil {
		return Container{}, fmt.Errorf("%s: %w", ref, err)
	}
	defer closeRuntimes(rts)
	if c, ok := inspectKey(ctx, rts, ref); ok {
		return c, nil
	}
	all, err := listFlat(ctx, ref, rts)
	if err != nil {
		return Container{}, err
	}
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

// inspectKey asks a Docker Engine API (Docker, podman's service) for the
// container ref names by its key alone: the daemon resolves a full ID, a
// name and a unique ID prefix in the order match does, so the listing of
// every container is not needed. ok is false if the reference is not of
// that kind or the daemon did not find exactly one; Lookup then lists
// and matches, which says why (no such container, the ambiguous matches).
func inspectKey(ctx context.Context, rts []Runtime, ref Ref) (Container, bool) {
	if ref.Pod || len(rts) != 1 || (ref.Runtime != "docker" && ref.Runtime != "podman") {
		return Container{}, false
	}
	d, ok := rts[0].(*dockerAPI)
	if !ok {
		return Container{}, false
	}
	c, err := d.Inspect(ctx, ref.Key)
	if err != nil || !(c.ID == ref.Key || c.Name == ref.Key || strings.HasPrefix(c.ID, ref.Key)) {
		return Container{}, false
	}
	return c, true
}

// connectAndList connects to ref's runtimes and lists the containers of
// them all; the caller closes the runtimes with closeRuntimes.
func connectAndList(ctx context.Context, ref Ref, o Options) ([]Runtime, []Container, error) {
	rts, err := Connect(ctx, ref.Runtime, o)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", ref, err)
	}
	all, err := listFlat(ctx, ref, rts)
	if err != nil {
		closeRuntimes(rts)
		return nil, nil, err
	}
	return rts, all, nil
}

// listFlat lists the containers of rts for ref.
func listFlat(ctx context.Context, ref Ref, rts []Runtime) ([]Container, error) {
	listed, err := listAll(ctx, rts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	all := make([]Container, len(listed))
	for i, l := range listed {
		all[i] = l.Container
	}
	return all, nil
}

// listed is a container and the runtime that listed it.
type listed struct {
	Container
	rt Runtime
}

// listAll lists the containers of every runtime in rts, asking them all at
// once. A container two runtimes list (by its full ID: the CRI's and
// Docker's containers are also containerd's, in its namespaces k8s.io and
// moby) is the first runtime's only, so container:ID is not ambiguous
// between them. The first runtime's error, in the order of rts, wins.
func listAll(ctx context.Context, rts []Runtime) ([]listed, error) {
	lists := make([][]Container, len(rts))
	errs := make([]error, len(rts))
	var wg sync.WaitGroup
	for i, rt := range rts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lists[i], errs[i] = rt.List(ctx)
		}()
	}
	wg.Wait()
	var all []listed
	owner := map[string]Runtime{}
	for i, rt := range rts {
		if errs[i] != nil {
			return nil, errs[i]
		}
		for _, c := range lists[i] {
			if o, ok := owner[c.ID]; ok && o != rt {
				continue
			}
			owner[c.ID] = rt
			all = append(all, listed{c, rt})
		}
	}
	return all, nil
}

// maxInspects bounds the inspect requests in flight at once, so a host
// with hundreds of containers does not open hundreds of connections.
const maxInspects = 8

// detailAll returns the Detailed record of every container of cs (see
// detail), asking up to maxInspects at a time; a container removed since
// the listing is left out. The first error in the order of cs wins.
func detailAll(ctx context.Context, cs []listed) ([]Container, error) {
	out := make([]Container, len(cs))
	errs := make([]error, len(cs))
	sem := make(chan struct{}, maxInspects)
	var wg sync.WaitGroup
	for i, c := range cs {
		if c.Detailed {
			out[i] = c.Container
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = c.rt.Inspect(ctx, c.ID)
		}()
	}
	wg.Wait()
	kept := out[:0]
	for i := range out {
		switch {
		case errors.Is(errs[i], ErrNotFound):
			continue // removed since the listing
		case errs[i] != nil:
			return nil, errs[i]
		}
		kept = append(kept, out[i])
	}
	return kept, nil
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
	// podman's command line inspects them all in one run, not one each,
	// while the other runtimes are asked; if one went away since the
	// listing, each is asked alone below.
	type batch struct {
		ids []string
		cs  []Container
		err error
	}
	batches := map[Runtime]*batch{}
	var rest []listed
	for _, c := range cs {
		if _, ok := c.rt.(*podmanCLI); !ok {
			rest = append(rest, c)
			continue
		}
		if batches[c.rt] == nil {
			batches[c.rt] = &batch{}
		}
		batches[c.rt].ids = append(batches[c.rt].ids, c.ID)
	}
	var wg sync.WaitGroup
	for rt, b := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.cs, b.err = rt.(*podmanCLI).inspectAll(ctx, b.ids)
		}()
	}
	all, err := detailAll(ctx, rest)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	for _, rt := range rts {
		b := batches[rt]
		switch {
		case b == nil:
			continue
		case b.err == nil:
			all = append(all, b.cs...)
			continue
		case !errors.Is(b.err, ErrNotFound):
			return nil, b.err
		}
		var alone []listed
		for _, c := range cs {
			if c.rt == rt {
				alone = append(alone, c)
			}
		}
		ds, err := detailAll(ctx, alone)
		if err != nil {
			return nil, err
		}
		all = append(all, ds...)
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
