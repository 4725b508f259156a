package agent

import (
	"context"

	"github.com/netobs/netobs/netobs/agent/agentpb"
	"github.com/netobs/netobs/netobs/topo"
)

// Topology implements agentpb.AgentServer: topo.Build over the
// namespaces named (every one when none is).
func (s *Server) Topology(ctx context.Context, req *agentpb.TopologyRequest) (*agentpb.TopologyResponse, error) {
	var nt notices
	opts := topo.Options{All: len(req.Nsrefs) == 0}
	defer func() {
		for _, ns := range opts.Namespaces {
			ns.Close()
		}
	}()
	for _, ref := range req.Nsrefs {
		ns, _, err := s.cfg.Backend.OpenNetNS(ctx, ref, &nt)
		if err != nil {
			return nil, s.statusOf(ctx, err)
		}
		opts.Namespaces = append(opts.Namespaces, ns)
	}
	g, err := topo.Build(opts)
	if err != nil {
		return nil, s.statusOf(ctx, err)
	}
	resp := &agentpb.TopologyResponse{Notices: nt.take()}
	for _, n := range g.Namespaces {
		pn := &agentpb.TopoNamespace{Id: n.ID, Inode: n.Inode, Names: n.Names, Pid: int64(n.PID), Command: n.Command,
			Nprocs: int64(n.NProcs), Host: n.Host, Error: n.Err}
		for _, i := range n.Interfaces {
			pi := &agentpb.TopoInterface{Id: i.ID, Namespace: i.NS, Index: int64(i.Index), Name: i.Name, Kind: i.Kind,
				State: i.State, Up: i.Up, Mtu: int64(i.MTU), Mac: i.MAC, Addrs: i.Addrs, Master: i.Master,
				Physical: i.Physical, Bus: i.Bus, Device: i.Device, Unresolved: i.Unresolved}
			if c := i.Counters; c != nil {
				pi.Counters = &agentpb.TopoCounters{RxPackets: c.RxPackets, TxPackets: c.TxPackets, RxBytes: c.RxBytes,
					TxBytes: c.TxBytes, RxDropped: c.RxDropped, TxDropped: c.TxDropped}
			}
			pn.Interfaces = append(pn.Interfaces, pi)
		}
		resp.Namespaces = append(resp.Namespaces, pn)
	}
	for _, p := range g.Processes {
		resp.Processes = append(resp.Processes, &agentpb.TopoProcess{Id: p.ID, Pid: int64(p.PID), Comm: p.Comm})
	}
	for _, e := range g.Edges {
		resp.Edges = append(resp.Edges, &agentpb.TopoEdge{Kind: string(e.Kind), From: e.From, To: e.To})
	}
	return resp, nil
}

// Topology is `topo [NSREF...]` on the agent's host: the graph, to be
// rendered here with its Write methods, and the notices the command
// prints on stderr.
func (c *Client) Topology(ctx context.Context, nsrefs []string) (*topo.Graph, []string, error) {
	resp, err := c.api.Topology(ctx, &agentpb.TopologyRequest{Nsrefs: nsrefs})
	if err != nil {
		return nil, nil, c.wrap(err)
	}
	g := &topo.Graph{}
	for _, pn := range resp.Namespaces {
		n := &topo.Namespace{ID: pn.Id, Inode: pn.Inode, Names: pn.Names, PID: int(pn.Pid), Command: pn.Command,
			NProcs: int(pn.Nprocs), Host: pn.Host, Err: pn.Error}
		for _, pi := range pn.Interfaces {
			i := &topo.Interface{ID: pi.Id, NS: pi.Namespace, Index: int(pi.Index), Name: pi.Name, Kind: pi.Kind,
				State: pi.State, Up: pi.Up, MTU: int(pi.Mtu), MAC: pi.Mac, Addrs: pi.Addrs, Master: pi.Master,
				Physical: pi.Physical, Bus: pi.Bus, Device: pi.Device, Unresolved: pi.Unresolved}
			if pc := pi.Counters; pc != nil {
				i.Counters = &topo.Counters{RxPackets: pc.RxPackets, TxPackets: pc.TxPackets, RxBytes: pc.RxBytes,
					TxBytes: pc.TxBytes, RxDropped: pc.RxDropped, TxDropped: pc.TxDropped}
			}
			n.Interfaces = append(n.Interfaces, i)
		}
		g.Namespaces = append(g.Namespaces, n)
	}
	for _, p := range resp.Processes {
		g.Processes = append(g.Processes, &topo.Process{ID: p.Id, PID: int(p.Pid), Comm: p.Comm})
	}
	for _, e := range resp.Edges {
		g.Edges = append(g.Edges, topo.Edge{Kind: topo.EdgeKind(e.Kind), From: e.From, To: e.To})
	}
	return g, resp.Notices, nil
}
