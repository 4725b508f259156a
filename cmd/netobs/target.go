package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/runtime"
	"github.com/netobs/netobs/nsjoin"
	"github.com/spf13/cobra"
)

// addRuntimeFlags adds the flags that say how container references reach
// their runtime.
func addRuntimeFlags(root *cobra.Command, a *app) {
	root.PersistentFlags().StringVar(&a.runtimeEndpoint, "runtime-endpoint", "",
		"container runtime API address for docker:, podman: and container: references (unix:///PATH or PATH; default $"+runtime.EnvEndpoint+", else the usual sockets)")
}

// openNetNS opens the network namespace an NSREF names. It is the one place
// the CLI turns an NSREF into a namespace: container references
// (docker:NAME, podman:ID, container:ID) are resolved through their runtime
// here, so nsjoin never learns about runtimes; anything else goes to
// nsjoin.Open. The container is nil for references that are not one.
func openNetNS(a *app, ref string) (*nsjoin.NS, *runtime.Container, error) {
	return openNS(a, ref, nsjoin.Net)
}

// openNS is openNetNS for a namespace of any type; t == 0 means a path
// opens as whatever namespace it is, anything else as a network namespace.
func openNS(a *app, ref string, t nsjoin.Type) (*nsjoin.NS, *runtime.Container, error) {
	if !runtime.IsRef(ref) {
		var ns *nsjoin.NS
		var err error
		switch {
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
	c, err := runtime.Lookup(a.ctx, r, runtime.Options{Endpoint: a.runtimeEndpoint})
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

// warnSharedNetns says when a container has no network namespace of its
// own, so that what netobs shows is not mistaken for the container's alone.
func warnSharedNetns(a *app, ref string, c runtime.Container) {
	w := a.stderr
	if w == nil {
		w = os.Stderr
	}
	switch {
	case c.HostNetwork():
		fmt.Fprintf(w, "netobs: warning: %s uses the host's network namespace (network mode host): this observes the host\n", ref)
	case c.SharesWith() != "":
		id := c.SharesWith()
		if len(id) > 12 {
			id = id[:12]
		}
		fmt.Fprintf(w, "netobs: %s shares the network namespace of container %s (network mode container:)\n", ref, id)
	}
}

// containerTarget labels a capture of a container's namespace with the
// container's name (eth0@docker:web) and its runtime, ID and pod.
func containerTarget(ns *nsjoin.NS, c *runtime.Container) capture.Target {
	if c == nil {
		return capture.Target{NS: ns}
	}
	return capture.Target{NS: ns, Label: c.Label(), Owner: &capture.Owner{
		Runtime: c.Runtime, ContainerID: c.ID, Container: c.Name, Pod: c.Pod, PodNamespace: c.PodNamespace,
	}}
}
