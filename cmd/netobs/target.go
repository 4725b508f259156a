package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/netobs/netobs/internal/termsafe"
	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/pktout"
	"github.com/netobs/netobs/netobs/runtime"
	"github.com/netobs/netobs/nsjoin"
	"github.com/spf13/cobra"
)

// addRuntimeFlags adds the flags that say how container references reach
// their runtime.
func addRuntimeFlags(root *cobra.Command, a *app) {
	addHostRootFlag(root, a)
	root.PersistentFlags().StringVar(&a.runtimeEndpoint, "runtime-endpoint", "",
		"container runtime API address for docker:, podman:, cri:, containerd:, pod: and container: references: a Docker/podman API, CRI or containerd socket (unix:///PATH or PATH; default $"+runtime.EnvEndpoint+", else the usual sockets)")
}

// envHostRoot names the environment variable that, like --host-root, says
// where the host's / is mounted; the flag wins.
const envHostRoot = "NETOBS_HOST_ROOT"

func addHostRootFlag(root *cobra.Command, a *app) {
	def := os.Getenv(envHostRoot)
	if def == "" {
		def = "/"
	}
	root.PersistentFlags().StringVar(&a.hostRoot, "host-root", def,
		"where the host's / is mounted when netobs runs in a container (the host's /proc and /run under it): PIDs, ip netns names, runtime sockets and their netns paths, and the namespaces ns ls, topo, events --all, serve and completion list are looked up there; $"+envHostRoot+" sets it when the flag is not given")
}

// runtimeOptions is how container references reach their runtime.
func (a *app) runtimeOptions() runtime.Options {
	return runtime.Options{Endpoint: a.runtimeEndpoint, HostRoot: a.hostRoot}
}

// openNetNS opens the network namespace an NSREF names. It is the one place
// the CLI turns an NSREF into a namespace: container references
// (docker:NAME, podman:ID, cri:ID, containerd:NS/ID, pod:NS/NAME, container:ID) are resolved through their runtime
// here, so nsjoin never learns about runtimes; anything else goes to
// nsjoin.Open. The container is nil for references that are not one.
func openNetNS(a *app, ref string) (*nsjoin.NS, *runtime.Container, error) {
	return openNS(a, ref, nsjoin.Net)
}

// openNS is openNetNS for a namespace of any type; t == 0 means a path
// opens as whatever namespace it is, anything else as a network namespace.
func openNS(a *app, ref string, t nsjoin.Type) (*nsjoin.NS, *runtime.Container, error) {
	if ref == "" {
		// An unset shell variable, most likely; under --host-root it would
		// otherwise read as a PID of no digits.
		return nil, nil, usageError{errEmptyRef}
	}
	if !runtime.IsRef(ref) {
		var ns *nsjoin.NS
		var err error
		switch path := underHostRoot(a, ref, t); {
		case path != "":
			ns, err = nsjoin.OpenFile(path)
			want := t
			if want == 0 {
				want = nsjoin.Net
			}
			if err == nil && ns.Type() != want {
				ns.Close()
				ns, err = nil, fmt.Errorf("%s: %w", path, nsjoin.ErrWrongType)
			}
		case t == 0 && strings.Contains(ref, "/"):
			ns, err = nsjoin.OpenFile(ref)
		case t == 0:
			ns, err = nsjoin.OpenType(ref, nsjoin.Net)
		default:
			ns, err = nsjoin.OpenType(ref, t)
		}
		return ns, nil, err
	}
	r, err := runtime.ParseRef(ref)
	if err != nil {
		return nil, nil, usageError{err}
	}
	c, err := runtime.Lookup(a.ctx, r, a.runtimeOptions())
	if r.IsGlob() && errors.Is(err, runtime.ErrAmbiguous) {
		// A glob where one namespace is taken: the matches are listed,
		// the fix is in how netobs was called.
		return nil, nil, usageError{err}
	}
	if err != nil {
		return nil, nil, err
	}
	if t == 0 {
		t = nsjoin.Net
	}
	ns, err := runtime.OpenNS(c, t)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", ref, err)
	}
	if t == nsjoin.Net {
		warnSharedNetns(a, ref, c)
	}
	return ns, &c, nil
}

var errEmptyRef = errors.New("empty NSREF: give a path, a PID, an ip netns name, self, or a container (docker:NAME, pod:NAMESPACE/NAME)")

// underHostRoot maps a PID or an ip netns name to its file under
// --host-root: the host's PIDs are not this process's when netobs runs in
// a container, so /proc/PID/ns is read from the host's /proc. It returns ""
// for paths, "self", and without a host root.
func underHostRoot(a *app, ref string, t nsjoin.Type) string {
	if a.hostRoot == "" || a.hostRoot == "/" || ref == "self" || strings.Contains(ref, "/") {
		return ""
	}
	if t == 0 {
		t = nsjoin.Net
	}
	if strings.Trim(ref, "0123456789") == "" {
		return runtime.HostPath(a.hostRoot, "/proc/"+ref+"/ns/"+t.String())
	}
	if t != nsjoin.Net || nsjoin.ValidateName(ref) != nil {
		return "" // nsjoin gives the error
	}
	return runtime.HostPath(a.hostRoot, "/run/netns/"+ref)
}

// warnSharedNetns says when a container has no network namespace of its
// own, so that what netobs shows is not mistaken for the container's alone.
func warnSharedNetns(a *app, ref string, c runtime.Container) {
	w := a.stderr
	if w == nil {
		w = os.Stderr
	}
	switch {
	case c.HostNetwork() && c.Runtime == "cri":
		fmt.Fprintf(w, "netobs: warning: %s: pod %s/%s uses the host's network namespace (hostNetwork: true): this observes the host\n",
			termsafe.Quote(ref), termsafe.Quote(c.PodNamespace), termsafe.Quote(c.Pod))
	case c.HostNetwork() && c.Runtime == "containerd":
		fmt.Fprintf(w, "netobs: warning: %s uses the host's network namespace (its runtime spec has none of its own: --net-host): this observes the host\n", termsafe.Quote(ref))
	case c.HostNetwork():
		fmt.Fprintf(w, "netobs: warning: %s uses the host's network namespace (network mode host): this observes the host\n", ref)
	case c.SharesPod():
		fmt.Fprintf(w, "netobs: %s is container %s of pod %s/%s and shares the pod's network namespace (sandbox %s)\n",
			termsafe.Quote(ref), termsafe.Quote(c.Name), termsafe.Quote(c.PodNamespace), termsafe.Quote(c.Pod), shortID(c.PodSandboxID))
	case c.SharesWith() != "":
		id := shortID(c.SharesWith())
		fmt.Fprintf(w, "netobs: %s shares the network namespace of container %s (network mode container:)\n", ref, id)
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// containerTarget labels a capture of a container's namespace with the
// container's name (eth0@docker:web) and its runtime, ID and pod.
func containerTarget(ns *nsjoin.NS, c *runtime.Container) capture.Target {
	if c == nil {
		return capture.Target{NS: ns}
	}
	return capture.Target{NS: ns, Label: c.Label(), Owner: containerOwner(c)}
}

// containerOwner is how every output names the container a namespace
// belongs to (capture, events and sockets alike); nil for nil.
func containerOwner(c *runtime.Container) *pktout.Owner {
	if c == nil {
		return nil
	}
	return &pktout.Owner{Runtime: c.Runtime, ContainerID: c.ID, Container: c.Name, Pod: c.Pod, PodNamespace: c.PodNamespace}
}

// openNetNSAll opens every network namespace an NSREF names: a pod glob
// (pod:default/web-*) expands to every matching pod, anything else is
// openNetNS's one. On error nothing stays open.
func openNetNSAll(a *app, ref string) ([]*nsjoin.NS, []*runtime.Container, error) {
	if runtime.IsRef(ref) {
		if r, err := runtime.ParseRef(ref); err == nil && r.IsGlob() {
			cs, err := runtime.LookupAll(a.ctx, r, a.runtimeOptions())
			if err != nil {
				return nil, nil, err
			}
			return openContainers(a, cs)
		}
	}
	ns, c, err := openNetNS(a, ref)
	if err != nil {
		return nil, nil, err
	}
	return []*nsjoin.NS{ns}, []*runtime.Container{c}, nil
}

// openNetNSMany opens the network namespaces of a command that takes many:
// every NSREF of refs (a pod glob expands to every match) and every
// running container and pod a -l selector matches, if it is not empty.
// On error nothing stays open.
func openNetNSMany(a *app, refs []string, selector string) ([]*nsjoin.NS, []*runtime.Container, error) {
	var nss []*nsjoin.NS
	var ctrs []*runtime.Container
	add := func(n []*nsjoin.NS, c []*runtime.Container, err error) error {
		if err != nil {
			for _, ns := range nss {
				ns.Close()
			}
			nss, ctrs = nil, nil
			return err
		}
		nss, ctrs = append(nss, n...), append(ctrs, c...)
		return nil
	}
	for _, ref := range refs {
		if err := add(openNetNSAll(a, ref)); err != nil {
			return nil, nil, err
		}
	}
	if selector != "" {
		if err := add(openSelected(a, selector)); err != nil {
			return nil, nil, err
		}
	}
	return nss, ctrs, nil
}

// addSelectorFlag adds --selector (-l where short is "l") to a command
// that takes many namespaces, as capture has it.
func addSelectorFlag(c *cobra.Command, selector *string, short, what string) {
	c.Flags().StringVarP(selector, "selector", short, "", what+" every running container and pod whose runtime labels match (KEY=VALUE,KEY!=VALUE,KEY,!KEY)")
}

// openSelected opens the network namespace of every running container
// and pod whose runtime labels match a -l selector.
func openSelected(a *app, selector string) ([]*nsjoin.NS, []*runtime.Container, error) {
	sel, err := runtime.ParseSelector(selector)
	if err != nil {
		return nil, nil, usageError{err}
	}
	cs, err := runtime.Select(a.ctx, sel, a.runtimeOptions())
	if err != nil {
		return nil, nil, err
	}
	return openContainers(a, cs)
}

func openContainers(a *app, cs []runtime.Container) ([]*nsjoin.NS, []*runtime.Container, error) {
	var nss []*nsjoin.NS
	var ctrs []*runtime.Container
	for i := range cs {
		c := &cs[i]
		ns, err := runtime.OpenNS(*c, nsjoin.Net)
		if err != nil {
			for _, n := range nss {
				n.Close()
			}
			return nil, nil, fmt.Errorf("%s: %w", c.Label(), err)
		}
		warnSharedNetns(a, c.Label(), *c)
		nss, ctrs = append(nss, ns), append(ctrs, c)
	}
	return nss, ctrs, nil
}
