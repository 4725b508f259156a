package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/netobs/netobs/internal/termsafe"
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
	var rt string
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
runtime's sockets are found without flags; --runtime-endpoint overrides.`,
		Example: `  netobs ps
  netobs ps --runtime podman --json
  netobs ps --runtime containerd`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if rt != "" && !runtimeKnown(rt) {
				return usageErrorf("ps: --runtime %q: want one of %s", rt, strings.Join(runtime.Runtimes, ", "))
			}
			cs, err := runtime.List(a.ctx, rt, a.runtimeOptions())
			if err != nil {
				return fmt.Errorf("ps: %w", err)
			}
			host, _ := nsjoin.Self(nsjoin.Net)
			if host != nil {
				defer host.Close()
			}
			enc := json.NewEncoder(a.stdout)
			w := tabwriter.NewWriter(a.stdout, 0, 8, 2, ' ', 0)
			if !asJSON {
				fmt.Fprintln(w, "RUNTIME\tID\tNAME\tPOD\tSTATE\tNETNS\tADDRESSES")
			}
			for _, ctr := range cs {
				line := psJSON{Container: ctr}
				netns := "-"
				if ns, err := runtime.OpenNS(ctr, nsjoin.Net); err == nil {
					line.NetnsID, line.Inode = ns.String(), ns.ID().Inode
					netns = ns.String()
					if host != nil && nsjoin.Same(ns, host) {
						netns += " host"
					}
					ns.Close()
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
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ctr.Runtime, printable(id), name, pod,
					printable(ctr.State), netns, strings.Join(addrs, ","))
			}
			return w.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "one JSON object per container")
	c.Flags().StringVar(&rt, "runtime", "", "only this runtime's containers ("+strings.Join(runtime.Runtimes, ", ")+")")
	return c
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
