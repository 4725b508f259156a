package agent

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/netobs/netobs/netobs/agent/agentpb"
	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/netobs/pktout"
	"github.com/netobs/netobs/netobs/runtime"
	"github.com/netobs/netobs/netobs/sockdiag"
	"github.com/netobs/netobs/nsjoin"
)

// NamespaceInfo is one namespace of a listing (`ns ls`), with the
// containers whose network namespace it is and its owner's user name.
type NamespaceInfo struct {
	nsjoin.Info
	User       string
	Containers []runtime.Container
}

// ContainerInfo is one container of a listing (`ps`) with its network
// namespace as the agent's host sees it.
type ContainerInfo struct {
	runtime.Container
	// NetnsID is net:[INODE], empty if the namespace could not be opened.
	NetnsID string
	Inode   uint64
	// HostNetns: the namespace is the agent host's own.
	HostNetns bool
}

func ownerToPB(o *pktout.Owner) *agentpb.Owner {
	if o == nil {
		return nil
	}
	return &agentpb.Owner{Runtime: o.Runtime, ContainerId: o.ContainerID, Container: o.Container, Pod: o.Pod, PodNamespace: o.PodNamespace}
}

func ownerFromPB(o *agentpb.Owner) *pktout.Owner {
	if o == nil {
		return nil
	}
	return &pktout.Owner{Runtime: o.Runtime, ContainerID: o.ContainerId, Container: o.Container, Pod: o.Pod, PodNamespace: o.PodNamespace}
}

func interfaceToPB(i *pktout.Interface) *agentpb.Interface {
	return &agentpb.Interface{Index: uint32(i.ID), Name: i.Name, Device: i.Device, Label: i.Label, Namespace: i.Namespace,
		Description: i.Description, Owner: ownerToPB(i.Owner), LinkType: uint32(i.LinkType), Snaplen: uint32(i.Snaplen), Filter: i.Filter}
}

func interfaceFromPB(i *agentpb.Interface) *pktout.Interface {
	return &pktout.Interface{ID: int(i.Index), Name: i.Name, Device: i.Device, Label: i.Label, Namespace: i.Namespace,
		Description: i.Description, Owner: ownerFromPB(i.Owner), LinkType: pktout.LinkType(i.LinkType), Snaplen: int(i.Snaplen), Filter: i.Filter}
}

// ContainerToPB is the wire form of a container of the agent's host.
func containerToPB(c *runtime.Container) *agentpb.Container {
	var addrs []string
	for _, a := range c.Addresses {
		addrs = append(addrs, a.String())
	}
	return &agentpb.Container{Runtime: c.Runtime, Kind: c.Kind, Endpoint: c.Endpoint, Id: c.ID, Name: c.Name, Pod: c.Pod,
		PodNamespace: c.PodNamespace, PodSandboxId: c.PodSandboxID, Labels: c.Labels, State: c.State, Running: c.Running,
		Netns: c.Netns, Pid: int64(c.PID), NetworkMode: c.NetworkMode, Addresses: addrs}
}

func containerFromPB(p *agentpb.Container) (runtime.Container, error) {
	c := runtime.Container{Runtime: p.Runtime, Kind: p.Kind, Endpoint: p.Endpoint, ID: p.Id, Name: p.Name, Pod: p.Pod,
		PodNamespace: p.PodNamespace, PodSandboxID: p.PodSandboxId, Labels: p.Labels, State: p.State, Running: p.Running,
		Netns: p.Netns, PID: int(p.Pid), NetworkMode: p.NetworkMode}
	for _, a := range p.Addresses {
		pfx, err := netip.ParsePrefix(a)
		if err != nil {
			return c, fmt.Errorf("container %q: address %q: %w", p.Id, a, err)
		}
		c.Addresses = append(c.Addresses, pfx)
	}
	return c, nil
}

func socketToPB(s *sockdiag.Socket) *agentpb.Socket {
	p := &agentpb.Socket{Proto: s.Proto, State: s.State, Local: s.Local.String(), Peer: s.Peer.String(), V6Only: s.V6Only,
		Iface: s.Iface, Ifname: s.IfName, RecvQ: s.RecvQ, SendQ: s.SendQ, Uid: s.UID, Inode: s.Inode}
	for _, pr := range s.Procs {
		p.Procs = append(p.Procs, &agentpb.Proc{Pid: int64(pr.PID), Comm: pr.Comm, Fd: int64(pr.FD)})
	}
	return p
}

func socketFromPB(p *agentpb.Socket) (sockdiag.Socket, error) {
	s := sockdiag.Socket{Proto: p.Proto, State: p.State, V6Only: p.V6Only, Iface: p.Iface, IfName: p.Ifname,
		RecvQ: p.RecvQ, SendQ: p.SendQ, UID: p.Uid, Inode: p.Inode}
	var err error
	if s.Local, err = parseAddrPort(p.Local); err != nil {
		return s, fmt.Errorf("socket %d: local address: %w", p.Inode, err)
	}
	if s.Peer, err = parseAddrPort(p.Peer); err != nil {
		return s, fmt.Errorf("socket %d: peer address: %w", p.Inode, err)
	}
	for _, pr := range p.Procs {
		s.Procs = append(s.Procs, sockdiag.Proc{PID: int(pr.Pid), Comm: pr.Comm, FD: int(pr.Fd)})
	}
	return s, nil
}

// parseAddrPort reads netip.AddrPort's String form, in which the zero
// value is "invalid AddrPort".
func parseAddrPort(s string) (netip.AddrPort, error) {
	if s == (netip.AddrPort{}).String() {
		return netip.AddrPort{}, nil
	}
	return netip.ParseAddrPort(s)
}

func eventToPB(ev *events.Event) *agentpb.Event {
	p := &agentpb.Event{Time: ev.Time.UnixNano(), Kind: ev.Kind, Action: string(ev.Action), Key: ev.Key, Text: ev.Text,
		Index: int64(ev.Index), Dev: ev.Dev, Notes: ev.Notes,
		Ns: &agentpb.EventNamespace{Dev: ev.NS.Dev, Inode: ev.NS.Inode, Name: ev.NS.Name, Pid: int64(ev.NS.PID), Ref: ev.NS.Ref,
			Label: ev.NS.Label, Owner: ownerToPB(ev.NS.Owner)}}
	for _, c := range ev.Changes {
		p.Changes = append(p.Changes, &agentpb.Change{Kind: c.Kind, Action: string(c.Action), Key: c.Key, Text: c.Text})
	}
	return p
}

func eventFromPB(p *agentpb.Event) events.Event {
	ev := events.Event{Time: time.Unix(0, p.Time), Kind: p.Kind, Action: events.Action(p.Action), Key: p.Key, Text: p.Text,
		Index: int(p.Index), Dev: p.Dev, Notes: p.Notes}
	if n := p.Ns; n != nil {
		ev.NS = events.Namespace{Dev: n.Dev, Inode: n.Inode, Name: n.Name, PID: int(n.Pid), Ref: n.Ref, Label: n.Label, Owner: ownerFromPB(n.Owner)}
	}
	for _, c := range p.Changes {
		ev.Changes = append(ev.Changes, events.Change{Kind: c.Kind, Action: events.Action(c.Action), Key: c.Key, Text: c.Text})
	}
	return ev
}

func namespaceToPB(n *NamespaceInfo) *agentpb.Namespace {
	p := &agentpb.Namespace{Type: n.Type.String(), Inode: n.ID.Inode, Dev: n.ID.Dev, Nprocs: int64(n.NProcs), Pid: int64(n.PID),
		Command: n.Command, Uid: int64(n.UID), Names: n.Names, Userns: n.UserNS, User: n.User}
	for i := range n.Containers {
		p.Containers = append(p.Containers, containerToPB(&n.Containers[i]))
	}
	return p
}

func namespaceFromPB(p *agentpb.Namespace) (NamespaceInfo, error) {
	t, err := nsjoin.ParseType(p.Type)
	if err != nil {
		return NamespaceInfo{}, fmt.Errorf("namespace %d: %w", p.Inode, err)
	}
	n := NamespaceInfo{Info: nsjoin.Info{Type: t, ID: nsjoin.ID{Dev: p.Dev, Inode: p.Inode}, NProcs: int(p.Nprocs), PID: int(p.Pid),
		Command: p.Command, UID: int(p.Uid), Names: p.Names, UserNS: p.Userns}, User: p.User}
	for _, c := range p.Containers {
		ctr, err := containerFromPB(c)
		if err != nil {
			return n, err
		}
		n.Containers = append(n.Containers, ctr)
	}
	return n, nil
}
