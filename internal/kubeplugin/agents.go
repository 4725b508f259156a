package kubeplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/netobs/netobs/internal/termsafe"
	"github.com/netobs/netobs/netobs/agent"
	"github.com/netobs/netobs/netobs/agent/agentpb"
	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/netobs/kube"
	"github.com/netobs/netobs/netobs/pktout"
	"github.com/netobs/netobs/netobs/runtime"
	"github.com/netobs/netobs/netobs/sockdiag"
)

// AgentClient is the plugin's kube.Agents: it calls each target's netobs
// agent through the target's Dial (a port-forward through the API server)
// with the agent package's client, one agent.Source per node named after
// the node, and prints what they answer labelled with the node.
type AgentClient struct{}

var _ kube.Agents = AgentClient{}

// source is the agent of t: named after its node, reached by t.Dial. The
// agents of deploy/kubernetes take no token: only port-forward reaches
// their loopback port, and RBAC decides who may open one.
func (c AgentClient) source(t kube.Target) agent.Source {
	return agent.Source{Name: t.Node, Dial: t.Dial}
}

// NodeError is an operation that failed on one node's agent; the other
// nodes' parts went on.
type NodeError struct {
	Op, Node string
	Err      error
}

func (e *NodeError) Error() string {
	return fmt.Sprintf("%s: node %s: %v", e.Op, termsafe.Quote(e.Node), e.Err)
}

func (e *NodeError) Unwrap() error { return e.Err }

// Capture captures every target's pods through CaptureMergedTo: each node
// asked for its own pods' references, one merged output with interfaces
// named DEVICE@pod:NS/NAME@NODE (the agent's label and the node), each
// described with the node, the pod and its sandbox or container. Without
// req.PcapNG it writes a line per packet. The per-node counts go to
// status; a node that fails is named there and in the error (exit 1), the
// others are captured to the end.
func (c AgentClient) Capture(ctx context.Context, targets []kube.Target, req kube.CaptureRequest, status io.Writer) error {
	srcs := make([]agent.Source, 0, len(targets))
	for _, t := range targets {
		refs := t.Refs()
		args := append([]string{}, refs...)
		if req.Filter != "" {
			args = append(args, req.Filter)
		}
		s := c.source(t)
		s.Request = &agentpb.CaptureRequest{Args: args, Dash: int32(len(refs)), Interfaces: req.Interfaces,
			Snaplen: int32(req.Snaplen), Count: uint64(req.Count)}
		srcs = append(srcs, s)
	}
	var ng *pktout.PcapngWriter
	opened := false
	res, err := agent.CaptureMergedTo(ctx, srcs, nil, func(ifcs []*pktout.Interface) (capture.Handler, error) {
		opened = true
		names := make([]string, len(ifcs))
		for i, ifc := range ifcs {
			names[i] = termsafe.Escape(ifc.Name)
		}
		fmt.Fprintf(status, "kubectl-netobs: capturing on %s\n", strings.Join(names, ", "))
		if !req.PcapNG {
			return pktout.NewSummaryWriter(req.Output, req.JSON), nil
		}
		var err error
		ng, err = pktout.NewPcapngWriter(req.Output, ifcs, "kubectl netobs capture")
		return ng, err
	}, agent.MergeOptions{Stderr: status, Count: uint64(req.Count)})
	var werr error
	if ng != nil {
		var stats []pktout.Stats
		for _, r := range res {
			stats = append(stats, r.Stats...)
		}
		werr = ng.WriteStats(stats)
	}
	if err != nil && (!opened || errors.Is(err, agent.ErrUsage)) {
		if errors.Is(err, agent.ErrUsage) {
			return err
		}
		return fmt.Errorf("capture: %w", err)
	}
	// The capture ran (to its end, or until writing failed): each node's
	// counts.
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("capture: %w", err))
	}
	for _, r := range res {
		st, dropped := r.Totals()
		state := "to the end"
		switch {
		case r.Err != nil:
			state = "failed: " + termsafe.Escape(r.Err.Error())
			errs = append(errs, &NodeError{Op: "capture", Node: r.Name, Err: fmt.Errorf("%w; the file holds what it sent, the other nodes were captured to the end", r.Err)})
		case r.Ended > 0:
			state = fmt.Sprintf("%d of %d parts ended early", r.Ended, len(r.Stats))
			errs = append(errs, &NodeError{Op: "capture", Node: r.Name, Err: errors.New(state + " (see above)")})
		}
		fmt.Fprintf(status, "node %s: %d captured, %d received by filter, %d dropped by kernel, %d dropped by agent; %s\n",
			termsafe.Escape(r.Name), st.Captured, st.Received, st.Dropped, dropped, state)
	}
	if werr != nil && err == nil {
		errs = append(errs, fmt.Errorf("capture: write: %w", werr))
	}
	return errors.Join(errs...)
}

// errCount ends a node's event stream once --count events are printed.
var errCount = errors.New("count reached")

// Events watches every target's namespaces on its agent, all at once,
// and prints the events as they come, each namespace labelled
// LABEL@NODE (pod:NS/NAME@node-a; node/NAME for the node's own) and, in
// JSON, with a "node" field. With req.Count it ends after that many
// events in all (initial ones not counted).
func (c AgentClient) Events(ctx context.Context, targets []kube.Target, req kube.EventsRequest, status io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu               sync.Mutex
		printed, initial int
		wg               sync.WaitGroup
	)
	errs := make([]error, len(targets))
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := agent.New(c.source(t))
			if err != nil {
				errs[i] = &NodeError{Op: "events", Node: t.Node, Err: err}
				return
			}
			defer cl.Close()
			var buf bytes.Buffer
			res, err := cl.Events(ctx, &agentpb.EventsRequest{Nsrefs: t.Refs(), Kinds: req.Kinds, Initial: req.Initial, Count: uint64(req.Count)}, agent.EventsHandler{
				Ready: func(n int, kinds string) {
					mu.Lock()
					defer mu.Unlock()
					fmt.Fprintf(status, "kubectl-netobs: events: node %s: watching %d namespaces for %s\n", termsafe.Escape(t.Node), n, kinds)
				},
				Notice: func(text string) {
					mu.Lock()
					defer mu.Unlock()
					fmt.Fprintf(status, "kubectl-netobs: node %s: %s\n", termsafe.Escape(t.Node), termsafe.Escape(text))
				},
				Event: func(ev events.Event) error {
					mu.Lock()
					defer mu.Unlock()
					if req.Count > 0 && printed-initial >= req.Count {
						return errCount
					}
					buf.Reset()
					if req.JSON {
						b, err := json.Marshal(ev)
						if err != nil {
							return err
						}
						buf.Write(withNode(b, t.Node))
						buf.WriteByte('\n')
					} else {
						ev.NS.Label = nodeLabel(ev.NS, t.Node)
						events.WriteText(&buf, ev)
					}
					if _, err := req.Output.Write(buf.Bytes()); err != nil {
						return fmt.Errorf("write: %w", err)
					}
					printed++
					if ev.Action == events.Initial {
						initial++
					}
					if req.Count > 0 && printed-initial >= req.Count {
						cancel()
						return errCount
					}
					return nil
				},
			})
			mu.Lock()
			defer mu.Unlock()
			if res != nil {
				fmt.Fprintf(status, "node %s: %d events, %d resyncs after overflow, %d forged netlink messages dropped, %d dropped by agent\n",
					termsafe.Escape(t.Node), res.Events, res.Resyncs, res.Forged, res.AgentDropped)
				if res.Err != "" && err == nil {
					err = errors.New(res.Err)
				}
			}
			if err != nil && !errors.Is(err, errCount) && (ctx.Err() == nil || errors.Is(err, agent.ErrUsage)) {
				errs[i] = &NodeError{Op: "events", Node: t.Node, Err: err}
				// Said now too: the other nodes may be watched for long.
				fmt.Fprintf(status, "kubectl-netobs: events: node %s failed, the other nodes are still watched: %s\n",
					termsafe.Escape(t.Node), termsafe.Escape(err.Error()))
			}
		}()
	}
	wg.Wait()
	fmt.Fprintf(status, "kubectl-netobs: events: %d events printed (%d initial)\n", printed, initial)
	return errors.Join(errs...)
}

// nodeLabel is what an event's namespace is called here: its label (or
// reference) on the agent, @NODE.
func nodeLabel(ns events.Namespace, node string) string {
	l := ns.Label
	if l == "" {
		l = ns.Ref
	}
	if l == kube.NodeNetnsRef && ns.Label == "" {
		return "node/" + node
	}
	if l == "" {
		return "node/" + node + " " + ns.String()
	}
	return l + "@" + node
}

// withNode adds "node":NODE to the JSON object b.
func withNode(b []byte, node string) []byte {
	n, _ := json.Marshal(node)
	out := append([]byte(`{"node":`), n...)
	if len(b) > 2 {
		out = append(out, ',')
	}
	return append(out, b[1:]...)
}

// Sockets lists the sockets of every reference of every target, asking
// the nodes at once and printing node by node: a header `NODE net:[INODE]
// LABEL` and ss's table per namespace, or with req.JSON one object per
// socket with the pod's and the node's fields.
func (c AgentClient) Sockets(ctx context.Context, targets []kube.Target, req kube.SocketsRequest, status io.Writer) error {
	type answer struct {
		ref string
		res *agent.SocketsResult
	}
	answers := make([][]answer, len(targets))
	errs := make([]error, len(targets))
	forEach(targets, func(i int, t kube.Target) {
		cl, err := agent.New(c.source(t))
		if err != nil {
			errs[i] = &NodeError{Op: "sockets", Node: t.Node, Err: err}
			return
		}
		defer cl.Close()
		var nerrs []error
		for _, ref := range t.Refs() {
			r, err := cl.Sockets(ctx, ref, sockdiag.Options{TCP: req.TCP, UDP: req.UDP, Listening: req.Listening})
			if err != nil {
				nerrs = append(nerrs, err)
				continue
			}
			answers[i] = append(answers[i], answer{ref, r})
		}
		if nerrs != nil {
			errs[i] = &NodeError{Op: "sockets", Node: t.Node, Err: errors.Join(nerrs...)}
		}
	})
	for i, t := range targets {
		for _, a := range answers[i] {
			for _, n := range a.res.Notices {
				fmt.Fprintf(status, "kubectl-netobs: node %s: %s\n", termsafe.Escape(t.Node), termsafe.Escape(n))
			}
			label := a.res.Label
			if label == "" {
				label = a.ref
			}
			if a.ref == kube.NodeNetnsRef {
				label = "node/" + t.Node
			}
			if req.JSON {
				if err := writeSocketsJSON(req.Output, a.res, t.Node); err != nil {
					return fmt.Errorf("sockets: write: %w", err)
				}
				continue
			}
			fmt.Fprintf(req.Output, "%s %s %s\n", termsafe.Escape(t.Node), termsafe.Escape(a.res.Netns), termsafe.Escape(label))
			if err := sockdiag.WriteTable(req.Output, a.res.Sockets); err != nil {
				return fmt.Errorf("sockets: write: %w", err)
			}
		}
	}
	return errors.Join(errs...)
}

func writeSocketsJSON(w io.Writer, r *agent.SocketsResult, node string) error {
	var owner []byte
	if r.Owner != nil {
		b, err := json.Marshal(r.Owner)
		if err != nil {
			return err
		}
		if len(b) > 2 {
			owner = b[1 : len(b)-1]
		}
	}
	for i := range r.Sockets {
		b, err := json.Marshal(&r.Sockets[i])
		if err != nil {
			return err
		}
		if owner != nil && len(b) > 2 {
			b = append(append(append(b[:len(b)-1:len(b)-1], ','), owner...), '}')
		}
		b = withNode(b, node)
		if _, err := w.Write(append(b, '\n')); err != nil {
			return err
		}
	}
	return nil
}

// psJSON is one line of ps --json: the container as `netobs ps --json`
// gives it, and the node.
type psJSON struct {
	Node string `json:"node"`
	runtime.Container
	NetnsID string `json:"netns_id,omitempty"`
	Inode   uint64 `json:"inode,omitempty"`
}

// PS lists the containers and pods each target's agent sees, asking the
// nodes at once: a table with a NODE column, or one JSON object per
// container with a "node" field.
func (c AgentClient) PS(ctx context.Context, targets []kube.Target, req kube.PSRequest, status io.Writer) error {
	lists := make([][]agent.ContainerInfo, len(targets))
	errs := make([]error, len(targets))
	forEach(targets, func(i int, t kube.Target) {
		cl, err := agent.New(c.source(t))
		if err == nil {
			defer cl.Close()
			lists[i], err = cl.Containers(ctx, "")
		}
		if err != nil {
			errs[i] = &NodeError{Op: "ps", Node: t.Node, Err: err}
		}
	})
	enc := json.NewEncoder(req.Output)
	tw := tabwriter.NewWriter(req.Output, 0, 8, 2, ' ', 0)
	if !req.JSON {
		fmt.Fprintln(tw, "NODE\tRUNTIME\tID\tNAME\tPOD\tSTATE\tNETNS\tADDRESSES")
	}
	for i, t := range targets {
		cs := lists[i]
		sort.SliceStable(cs, func(a, b int) bool {
			if cs[a].PodNamespace+"/"+cs[a].Pod != cs[b].PodNamespace+"/"+cs[b].Pod {
				return cs[a].PodNamespace+"/"+cs[a].Pod < cs[b].PodNamespace+"/"+cs[b].Pod
			}
			return cs[a].Kind == runtime.KindPod && cs[b].Kind != runtime.KindPod
		})
		for _, ci := range cs {
			if req.JSON {
				if err := enc.Encode(psJSON{Node: t.Node, Container: ci.Container, NetnsID: ci.NetnsID, Inode: ci.Inode}); err != nil {
					return fmt.Errorf("ps: write: %w", err)
				}
				continue
			}
			ctr := ci.Container
			id := ctr.ID
			if len(id) > 12 {
				id = id[:12]
			}
			name, pod, netns := cell(ctr.Name), "-", "-"
			if ctr.Kind == runtime.KindPod {
				name = "(pod)"
			}
			if ctr.Pod != "" {
				pod = cell(ctr.PodNamespace + "/" + ctr.Pod)
			}
			if ci.NetnsID != "" {
				netns = cell(ci.NetnsID)
				if ci.HostNetns {
					netns += " host"
				}
			}
			var addrs []string
			for _, p := range ctr.Addresses {
				addrs = append(addrs, p.String())
			}
			if len(addrs) == 0 {
				addrs = []string{"-"}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(t.Node), cell(ctr.Runtime), cell(id), name, pod, cell(ctr.State), netns, strings.Join(addrs, ","))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("ps: write: %w", err)
	}
	return errors.Join(errs...)
}

// cell is a table cell: escaped for the terminal, never empty or with
// spaces (which would shift the columns).
func cell(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\n") {
		return fmt.Sprintf("%q", s)
	}
	return termsafe.Quote(s)
}

// forEach runs f for every target at once and waits for them all.
func forEach(targets []kube.Target, f func(int, kube.Target)) {
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i, t)
		}()
	}
	wg.Wait()
}
