package kubeplugin

import (
	"fmt"
	"strings"

	"github.com/netobs/netobs/netobs/kube"
	"github.com/spf13/cobra"
)

func (a *app) captureCmd() *cobra.Command {
	var (
		req       kube.CaptureRequest
		write     string
		nodeNetns bool
	)
	c := &cobra.Command{
		Use:   "capture pod/NAME|deploy/NAME|node/NAME... [-n NS] [-l SEL] [-A] [-i IF] [-w FILE|-] [-c N] [FILTER]",
		Short: "Capture packets in pods on their nodes into one pcapng merged by time",
		Long: `capture captures packets in the network namespaces of the pods named, on
each pod's node through its netobs agent (all nodes at once), and with -w
writes one pcapng merged by timestamp with one interface per (node, pod,
interface), named DEVICE@pod:NAMESPACE/NAME@NODE and described with the
node, the pod and its sandbox; -w - writes it to stdout, which must not be
a terminal. Without -w it prints a line per packet (--json: an object).
Everything after the references is a libpcap filter expression, as for
tcpdump. At the end one line per node goes to stderr: captured, received
by filter, dropped by the kernel, dropped by the agent (a client too slow),
and how that node ended. A node whose agent fails or goes away is named,
the others are captured to the end, the file stays valid, and the exit
status is 1.`,
		Example: `  kubectl netobs capture pod/web-7d4b9 -w web.pcapng port 80
  kubectl netobs capture deploy/web -n shop -w - | wireshark -k -i -
  kubectl netobs capture node/worker-1 -i eth0 -c 100 -w node.pcapng
  kubectl netobs capture -A -l app=db -w db.pcapng tcp port 5432`,
		RunE: func(c *cobra.Command, args []string) error {
			refs, filter, err := splitArgs(args)
			if err != nil {
				return err
			}
			if req.Count < 0 {
				return usageErrorf("capture: -c %d: want 0 (no limit) or more", req.Count)
			}
			targets, err := a.resolve(c.Context(), refs, nodeNetns)
			if err != nil {
				return err
			}
			req.Filter = strings.Join(filter, " ")
			req.Output = a.stdout
			if write != "" {
				w, closeFn, err := a.openOutput(write)
				if err != nil {
					return err
				}
				req.Output, req.PcapNG = w, true
				defer closeFn()
			}
			a.announce("capture", targets)
			return a.env.Agents.Capture(c.Context(), targets, req, a.stderr)
		},
	}
	f := c.Flags()
	f.SetInterspersed(true)
	f.StringSliceVarP(&req.Interfaces, "interface", "i", nil, "interface in each pod (default: every interface); repeat or separate with commas")
	f.StringVarP(&write, "write", "w", "", `write pcapng to FILE ("-" for stdout) instead of a line per packet`)
	f.Int64VarP(&req.Count, "count", "c", 0, "stop after N packets in all (0: until interrupted)")
	f.IntVarP(&req.Snaplen, "snaplen", "s", 0, "bytes kept of each packet (0: the agent's default)")
	f.BoolVar(&req.JSON, "json", false, "one JSON object per packet instead of a text line (without -w)")
	f.BoolVar(&nodeNetns, "node-netns", false, "node/NAME means the node's own network namespace, not the pods on it")
	return c
}

func (a *app) eventsCmd() *cobra.Command {
	var (
		req       kube.EventsRequest
		nodeNetns bool
	)
	c := &cobra.Command{
		Use:   "events pod/NAME|deploy/NAME|node/NAME... [-n NS] [-l SEL] [-A]",
		Short: "Report link, address, route and neighbour changes in pods, on their nodes",
		Long: `events watches the network namespaces of the pods named, on each pod's
node through its netobs agent (all nodes at once), and prints the changes
as they come, each namespace labelled pod:NAMESPACE/NAME@NODE (with
--json, a "node" field). -c N ends after N changes in all nodes.`,
		RunE: func(c *cobra.Command, args []string) error {
			refs, rest, err := splitArgs(args)
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				return usageErrorf("events: %q is not pod/NAME, deploy/NAME or node/NAME", rest[0])
			}
			targets, err := a.resolve(c.Context(), refs, nodeNetns)
			if err != nil {
				return err
			}
			req.Output = a.stdout
			a.announce("events", targets)
			return a.env.Agents.Events(c.Context(), targets, req, a.stderr)
		},
	}
	f := c.Flags()
	f.StringVar(&req.Kinds, "kinds", "all", "kinds of change: comma-separated link, addr, route, neigh, rule, nsid, or all")
	f.BoolVar(&req.Initial, "initial", false, "print the objects present at the start first")
	f.IntVarP(&req.Count, "count", "c", 0, "exit after N events (0: no limit)")
	f.BoolVar(&req.JSON, "json", false, "one JSON object per event")
	f.BoolVar(&nodeNetns, "node-netns", false, "node/NAME means the node's own network namespace, not the pods on it")
	return c
}

func (a *app) socketsCmd() *cobra.Command {
	var (
		req       kube.SocketsRequest
		nodeNetns bool
	)
	c := &cobra.Command{
		Use:   "sockets pod/NAME|deploy/NAME|node/NAME... [-n NS] [-l SEL] [-A] [-t] [-u] [--listening]",
		Short: "List TCP and UDP sockets in pods, on their nodes",
		Long: `sockets lists the sockets of the pods named, asked of every pod's node's
netobs agent at once: per node and pod a line "NODE net:[INODE]
pod:NAMESPACE/NAME" and the table of netobs sockets (with --json one
object per socket with the node's and the pod's fields).`,
		RunE: func(c *cobra.Command, args []string) error {
			refs, rest, err := splitArgs(args)
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				return usageErrorf("sockets: %q is not pod/NAME, deploy/NAME or node/NAME", rest[0])
			}
			targets, err := a.resolve(c.Context(), refs, nodeNetns)
			if err != nil {
				return err
			}
			req.Output = a.stdout
			return a.env.Agents.Sockets(c.Context(), targets, req, a.stderr)
		},
	}
	f := c.Flags()
	f.BoolVarP(&req.TCP, "tcp", "t", false, "TCP sockets (default: TCP and UDP)")
	f.BoolVarP(&req.UDP, "udp", "u", false, "UDP sockets (default: TCP and UDP)")
	// -l is the label selector here, as in kubectl.
	f.BoolVar(&req.Listening, "listening", false, "only listening TCP and unconnected UDP sockets")
	f.BoolVar(&req.JSON, "json", false, "one JSON object per socket")
	f.BoolVar(&nodeNetns, "node-netns", false, "node/NAME means the node's own network namespace, not the pods on it")
	return c
}

func (a *app) psCmd() *cobra.Command {
	var req kube.PSRequest
	c := &cobra.Command{
		Use:   "ps [node/NAME...]",
		Short: "List the containers and pods the agents see, on every node or those named",
		Long: `ps lists the containers and pod sandboxes the netobs agent of every node
(or of the nodes named) sees through its node's runtimes, with a NODE
column (with --json, a "node" field).`,
		RunE: func(c *cobra.Command, args []string) error {
			refs, rest, err := splitArgs(args)
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				return usageErrorf("ps: %q is not node/NAME", rest[0])
			}
			for _, r := range refs {
				if r.Kind != kube.KindNode {
					return usageErrorf("ps: %s: ps takes nodes; for a pod's containers use `kubectl get pod`", r)
				}
			}
			if a.selector != "" {
				return usageErrorf("ps: -l does not apply: ps lists what the agents of whole nodes see")
			}
			var targets []kube.Target
			if len(refs) == 0 {
				r, _, _, err := a.resolver()
				if err != nil {
					return err
				}
				res, err := r.AllAgents(c.Context())
				if err != nil {
					return err
				}
				a.report(res)
				targets = res.Targets
			} else {
				targets, err = a.resolve(c.Context(), refs, true)
				if err != nil {
					return err
				}
			}
			req.Output = a.stdout
			return a.env.Agents.PS(c.Context(), targets, req, a.stderr)
		},
	}
	c.Flags().BoolVar(&req.JSON, "json", false, "one JSON object per container")
	return c
}

func (a *app) targetsCmd() *cobra.Command {
	var nodeNetns bool
	c := &cobra.Command{
		Use:   "targets pod/NAME|deploy/NAME|node/NAME... [-n NS] [-l SEL] [-A]",
		Short: "Show which agent on which node would observe which pods, without contacting the agents",
		RunE: func(c *cobra.Command, args []string) error {
			refs, rest, err := splitArgs(args)
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				return usageErrorf("targets: %q is not pod/NAME, deploy/NAME or node/NAME", rest[0])
			}
			targets, err := a.resolve(c.Context(), refs, nodeNetns)
			if err != nil {
				return err
			}
			for _, t := range targets {
				fmt.Fprintf(a.stdout, "node %s agent %s: %s\n", t.Node, t.AgentPod, strings.Join(t.Refs(), " "))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&nodeNetns, "node-netns", false, "node/NAME means the node's own network namespace, not the pods on it")
	return c
}

// announce says on stderr what each agent is asked to observe.
func (a *app) announce(op string, targets []kube.Target) {
	for _, t := range targets {
		fmt.Fprintf(a.stderr, "kubectl-netobs: %s on node %s via %s: %s\n", op, t.Node, t.AgentPod, strings.Join(t.Refs(), " "))
	}
}
