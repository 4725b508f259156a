package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/netobs/netobs/internal/termsafe"
	"github.com/netobs/netobs/netobs/agent"
	"github.com/netobs/netobs/netobs/runtime"
	"github.com/netobs/netobs/nsjoin"
	"github.com/spf13/cobra"
)

func init() { register(newPSCmd) }

// psJSON is one line of ps --json.
type psJSON struct {
	runtime.Container
	// NetnsID is the kernel's name of the network namespace, net:[INODE],
	// the same for containers that share one.
	NetnsID string `json:"netns_id,omitempty"`
	Inode   uint64 `json:"inode,omitempty"`
}

func newPSCmd(a *app) *cobra.Command {
	var asJSON bool
	var rt, agentAddr string
	c := &cobra.Command{
		Use:   "ps [--runtime docker|podman|cri|containerd] [--json]",
		Short: "List the containers and pods on this host with their network namespaces",
		Long: `List the containers of every runtime found on this host (Docker, podman
through its API socket or its own command line, CRI runtimes: containerd,
CRI-O, and containerd through its own API, every containerd namespace) with
runtime, ID, name, pod, state, network namespace and addresses. CRI pod
sandboxes are listed with kind "pod". A container that Docker or the CRI
lists is not listed again as containerd's (--runtime containerd lists them
all). Any of them can then be named as an NSREF: docker:NAME, podman:ID,
cri:ID, containerd:NAMESPACE/ID, pod:NAMESPACE/NAME, container:ID (a unique
ID prefix is enough).

NETNS is the kernel's name of the container's network namespace, the same
for containers that share one; "host" marks the host's own namespace. The
runtime's sockets are found without flags; --runtime-endpoint overrides.

With --agent ADDR (a unix socket path, or HOST:PORT) it runs on the host
of that netobs agent (see netobs agent --help) and prints the same here.`,
		Example: `  netobs ps
  netobs ps --runtime podman --json
  netobs ps --runtime containerd`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if rt != "" && !runtimeKnown(rt) {
				return usageErrorf("ps: --runtime %q: want one of %s", rt, strings.Join(runtime.Runtimes, ", "))
			}
			var cs []agent.ContainerInfo
			var err error
			if agentAddr != "" {
				cl, err := dialAgent(a, "ps", agentAddr)
				if err != nil {
					return err
				}
				defer cl.Close()
				if cs, err = cl.Containers(a.ctx, rt); err != nil {
					return agentError("ps", err)
				}
			} else if cs, err = listContainers(a, rt); err != nil {
				return err
			}
			return printContainers(a, cs, asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "one JSON object per container")
	c.Flags().StringVar(&rt, "runtime", "", "only this runtime's containers ("+strings.Join(runtime.Runtimes, ", ")+")")
	addAgentFlag(c, &agentAddr)
	return c
}

// listContainers lists the containers of runtime rt ("": every runtime)
// with their network namespaces: ps here, and on an agent's host.
func listContainers(a *app, rt string) ([]agent.ContainerInfo, error) {
	cs, err := runtime.List(a.ctx, rt, a.runtimeOptions())
	if err != nil {
		return nil, fmt.Errorf("ps: %w", err)
	}
	host, _ := nsjoin.Self(nsjoin.Net)
	if host != nil {
		defer host.Close()
	}
	out := make([]agent.ContainerInfo, len(cs))
	for i, ctr := range cs {
		out[i].Container = ctr
		if ns, err := runtime.OpenNS(ctr, nsjoin.Net); err == nil {
			out[i].NetnsID, out[i].Inode = ns.String(), ns.ID().Inode
			out[i].HostNetns = host != nil && nsjoin.Same(ns, host)
			ns.Close()
		}
	}
	return out, nil
}

func printContainers(a *app, cs []agent.ContainerInfo, asJSON bool) error {
	enc := json.NewEncoder(a.stdout)
	w := tabwriter.NewWriter(a.stdout, 0, 8, 2, ' ', 0)
	if !asJSON {
		fmt.Fprintln(w, "RUNTIME\tID\tNAME\tPOD\tSTATE\tNETNS\tADDRESSES")
	}
	for _, ci := range cs {
		ctr := ci.Container
		line := psJSON{Container: ctr, NetnsID: ci.NetnsID, Inode: ci.Inode}
		netns := "-"
		if ci.NetnsID != "" {
			netns = termsafe.Escape(ci.NetnsID)
			if ci.HostNetns {
				netns += " host"
			}
		}
		if asJSON {
			if err := enc.Encode(line); err != nil {
				return err
			}
			continue
		}
		var addrs []string
		for _, p := range ctr.Addresses {
			addrs = append(addrs, p.String())
		}
		if len(addrs) == 0 {
			addrs = []string{"-"}
		}
		id := ctr.ID
		if len(id) > 12 {
			id = id[:12]
		}
		pod := "-"
		if ctr.Pod != "" {
			pod = printable(ctr.PodNamespace + "/" + ctr.Pod)
		}
		name := printable(ctr.Name)
		if ctr.Kind == runtime.KindPod {
			name = "(pod)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(ctr.Runtime), printable(id), name, pod,
			printable(ctr.State), netns, strings.Join(addrs, ","))
	}
	return w.Flush()
}

func runtimeKnown(name string) bool {
	for _, r := range runtime.Runtimes {
		if r == name {
			return true
		}
	}
	return false
}

// printable is termsafe.Quote for a listing's columns, where a space or an
// empty string would also shift the columns.
func printable(s string) string {
	if s == "" || strings.ContainsFunc(s, unicode.IsSpace) {
		return strconv.Quote(s)
	}
	return termsafe.Quote(s)
}
