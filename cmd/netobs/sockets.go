package main

import (
	"encoding/json"
	"fmt"

	"github.com/netobs/netobs/internal/termsafe"
	"github.com/netobs/netobs/netobs/pktout"
	"github.com/netobs/netobs/netobs/sockdiag"
	"github.com/netobs/netobs/nsjoin"
	"github.com/spf13/cobra"
)

func init() { register(newSocketsCmd) }

func newSocketsCmd(a *app) *cobra.Command {
	var (
		o         sockdiag.Options
		asJS      bool
		selector  string
		agentAddr string
	)
	c := &cobra.Command{
		Use:   "sockets NSREF | --selector SELECTOR",
		Short: "List the TCP and UDP sockets of a network namespace (like ss -tuna inside it)",
		Long: `sockets lists the TCP and UDP sockets of the network namespace NSREF, as
'ss -tuna' run inside it would: protocol, state, receive and send queues,
local and peer address, inode, and the processes holding each socket (found
in /proc, so also processes in other PID namespaces, shown by host PID).

For a container (docker:web, pod:default/web) a first line names it with
its namespace (net:[INODE] docker:web), and --json adds runtime,
container_id, container, pod and pod_namespace to every socket, as capture
and events do. A pod glob in quotes ('pod:default/web-*') and --selector
SELECTOR (labels of the runtimes' containers and pods: app=web; -l is
--listening, as in ss) list every running match, each under its first line.

The listing comes from a sock_diag netlink socket created inside the
namespace; nothing is run there. Addresses are never resolved to names.

With --agent ADDR (a unix socket path, or HOST:PORT) it runs on the host
of that netobs agent (see netobs agent --help) and prints the same here
(one NSREF; no --selector).`,
		Example: `  netobs sockets lab1          # every TCP and UDP socket of netns lab1
  netobs sockets $PID -tl      # listening TCP sockets in the netns of process $PID
  netobs sockets lab1 --json   # one JSON object per socket
  netobs sockets 'pod:default/web-*' -tl    # pods web-0, web-1... of namespace default
  netobs sockets --selector app=web --json  # containers and pods labelled app=web
  netobs sockets --agent /run/netobs/agent.sock lab1 -tl   # on the agent's host`,
		Args: func(c *cobra.Command, args []string) error {
			if selector != "" && len(args) <= 1 && agentAddr == "" {
				return nil
			}
			return exactArgs(1, "NSREF or --selector")(c, args)
		},
		RunE: func(c *cobra.Command, args []string) error {
			if agentAddr != "" {
				if selector != "" {
					return usageErrorf("--selector %q does not go through --agent; name the pods instead ('pod:NAMESPACE/web-*')", selector)
				}
				return remoteSockets(a, agentAddr, args[0], o, asJS)
			}
			nss, ctrs, err := openNetNSMany(a, args, selector)
			if err != nil {
				return fmt.Errorf("sockets: %w", err)
			}
			defer func() {
				for _, ns := range nss {
					ns.Close()
				}
			}()
			for i, ns := range nss {
				socks, err := sockdiag.List(ns, o)
				if err != nil {
					return fmt.Errorf("sockets: %s: %w", termsafe.Quote(ns.Ref()), err)
				}
				if asJS {
					if err := writeSocketsJSON(a, socks, containerOwner(ctrs[i])); err != nil {
						return err
					}
					continue
				}
				if ctrs[i] != nil || len(nss) > 1 {
					// Whose sockets these are, as events labels its
					// lines: net:[INODE] docker:web.
					label := ns.Ref()
					if ctrs[i] != nil {
						label = ctrs[i].Label()
					}
					fmt.Fprintf(a.stdout, "%s %s\n", ns.ID().Format(nsjoin.Net), termsafe.Escape(label))
				}
				if err := writeSocketsText(a, socks); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := c.Flags()
	f.BoolVarP(&o.TCP, "tcp", "t", false, "TCP sockets (default: TCP and UDP)")
	f.BoolVarP(&o.UDP, "udp", "u", false, "UDP sockets (default: TCP and UDP)")
	f.BoolVarP(&o.Listening, "listening", "l", false, "only listening TCP and unconnected UDP sockets")
	f.BoolVar(&asJS, "json", false, "one JSON object per socket")
	addSelectorFlag(c, &selector, "", "list the sockets of")
	// ss habits: -a (every state) is the default and -n (numeric) is
	// how addresses are always shown; accept both so `-tuna` works.
	var all, numeric bool
	f.BoolVarP(&all, "all", "a", false, "every state (the default; for ss habits)")
	f.BoolVarP(&numeric, "numeric", "n", false, "numeric addresses (always; for ss habits)")
	addAgentFlag(c, &agentAddr)
	return c
}

// remoteSockets is sockets run on an agent's host, printed as here.
func remoteSockets(a *app, addr, ref string, o sockdiag.Options, asJS bool) error {
	cl, err := dialAgent(a, "sockets", addr)
	if err != nil {
		return err
	}
	defer cl.Close()
	r, err := cl.Sockets(a.ctx, ref, o)
	if err != nil {
		return agentError("sockets", err)
	}
	for _, n := range r.Notices {
		fmt.Fprintln(a.stderr, termsafe.Escape(n))
	}
	if asJS {
		return writeSocketsJSON(a, r.Sockets, r.Owner)
	}
	if r.Label != "" {
		fmt.Fprintf(a.stdout, "%s %s\n", termsafe.Escape(r.Netns), termsafe.Escape(r.Label))
	}
	return writeSocketsText(a, r.Sockets)
}

func writeSocketsText(a *app, socks []sockdiag.Socket) error {
	return sockdiag.WriteTable(a.stdout, socks)
}

// writeSocketsJSON writes one object per socket (sockdiag's JSON form);
// owner, if not nil, adds the container's fields to each.
func writeSocketsJSON(a *app, socks []sockdiag.Socket, owner *pktout.Owner) error {
	var extra []byte
	if owner != nil {
		b, err := json.Marshal(owner)
		if err != nil {
			return err
		}
		if len(b) > 2 { // not "{}"
			extra = b[1:]
		}
	}
	for i := range socks {
		b, err := json.Marshal(&socks[i])
		if err != nil {
			return err
		}
		if extra != nil && len(b) > 2 {
			b = append(append(b[:len(b)-1], ','), extra...)
		}
		if _, err := a.stdout.Write(append(b, '\n')); err != nil {
			return err
		}
	}
	return nil
}
