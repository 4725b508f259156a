package topo

import (
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/netobs/netobs/nsjoin"
)

// Graph is the namespace graph: namespaces holding interfaces, processes
// holding TUN/TAP devices, and the edges between them. Node IDs are
// stable for the life of the objects: "net:[INODE]" for a namespace,
// "net:[INODE]/IFINDEX" for an interface, "pid:PID" for a process.
type Graph struct {
	Namespaces []*Namespace
	Processes  []*Process
	Edges      []Edge
}

// Namespace is a network namespace node.
type Namespace struct {
	ID    string `json:"id"`
	Inode uint64 `json:"inode"`
	// Names are its `ip netns` names.
	Names []string `json:"names,omitempty"`
	// PID is the lowest PID in it, Command that process's command line,
	// NProcs the number of processes in it (0: only a name holds it).
	PID     int    `json:"pid,omitempty"`
	Command string `json:"command,omitempty"`
	NProcs  int    `json:"nprocs"`
	// Host is true for the initial network namespace (PID 1's).
	Host bool `json:"host,omitempty"`
	// Err says why its interfaces could not be read; then it has none.
	Err        string       `json:"error,omitempty"`
	Interfaces []*Interface `json:"-"`
}

// Ref returns a reference the netobs CLI takes for the namespace: its
// first `ip netns` name, else a PID in it, else its ID.
func (n *Namespace) Ref() string {
	switch {
	case len(n.Names) > 0:
		return n.Names[0]
	case n.PID != 0:
		return strconv.Itoa(n.PID)
	}
	return n.ID
}

// Interface is a network interface node.
type Interface struct {
	ID    string `json:"id"`
	NS    string `json:"namespace"` // the ID of its namespace
	Index int    `json:"index"`
	Name  string `json:"name"`
	// Kind is the rtnetlink kind (veth, bridge, bond, vlan, macvlan,
	// ipvlan, tun, tap, ...), "loopback", or "device" for an interface
	// without a kind (physical devices among them).
	Kind  string   `json:"kind"`
	State string   `json:"state"` // operational state as ip shows it: UP, DOWN, UNKNOWN, ...
	Up    bool     `json:"up"`    // administratively up (IFF_UP)
	MTU   int      `json:"mtu"`
	MAC   string   `json:"mac,omitempty"`
	Addrs []string `json:"addrs,omitempty"` // CIDR
	// Master is the ID of the bridge, bond or other master it is a port of.
	Master string `json:"master,omitempty"`
	// Physical is true for a device on a bus (pci, virtio, usb, ...):
	// Bus and Device name it.
	Physical bool   `json:"physical,omitempty"`
	Bus      string `json:"bus,omitempty"`
	Device   string `json:"device,omitempty"`
	// Unresolved names the other end of a veth or a parent that could not
	// be placed in the graph (for example "if7 in nsid 3"); no edge is
	// drawn for it.
	Unresolved string `json:"unresolved,omitempty"`
	// Counters are the kernel's counters of the interface when the
	// graph was built (as `ip -s link` shows them); nil if not reported.
	Counters *Counters `json:"counters,omitempty"`
}

// Counters are an interface's packet and byte counters since it was
// created, from its netlink link statistics.
type Counters struct {
	RxPackets uint64 `json:"rx_packets"`
	TxPackets uint64 `json:"tx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxDropped uint64 `json:"rx_dropped"`
	TxDropped uint64 `json:"tx_dropped"`
}

// Process is a process node: a holder of TUN/TAP devices.
type Process struct {
	ID   string `json:"id"`
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
}

// EdgeKind says what an edge means. The zero value is invalid on purpose.
type EdgeKind string

// The kinds of edges.
const (
	// Veth joins the two ends of a veth pair; From < To, one edge a pair.
	Veth EdgeKind = "veth"
	// Port goes from a port to its master (bridge, bond, team, vrf, ...).
	Port EdgeKind = "port"
	// Parent goes from a VLAN, macvlan, ipvlan or other stacked device
	// to the device it sits on, possibly in another namespace.
	Parent EdgeKind = "parent"
	// Owner goes from a process to a TUN/TAP device it holds open.
	Owner EdgeKind = "owner"
)

// Edge is a relation between two nodes, named by ID.
type Edge struct {
	Kind EdgeKind `json:"kind"`
	From string   `json:"from"`
	To   string   `json:"to"`
}

// Options says which namespaces Build draws.
type Options struct {
	// Namespaces are the network namespaces to draw. Build does not
	// close them.
	Namespaces []*nsjoin.NS
	// All draws every network namespace on the system (nsjoin.List):
	// those of processes and those named under /run/netns.
	All bool
	// HostRoot is where the host's / is mounted when the caller runs in a
	// container with the host's /proc and /run under it: namespaces,
	// names, PIDs and commands are read from HostRoot/proc and
	// HostRoot/run/netns. "" or "/" means the caller's own.
	HostRoot string
}

// ErrNoNamespaces: Build was given no namespace and not All.
var ErrNoNamespaces = errors.New("no namespace to draw")

// Error is what Build returns: the operation and its cause.
type Error struct {
	Op  string
	Err error
}

func (e *Error) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// NodeID returns the ID of a namespace with the given inode.
func NodeID(inode uint64) string { return fmt.Sprintf("net:[%d]", inode) }

// InterfaceID returns the ID of the interface with the index in the
// namespace with the given inode.
func InterfaceID(inode uint64, index int) string { return fmt.Sprintf("net:[%d]/%d", inode, index) }

// Namespace returns the namespace node with the ID, or nil.
func (g *Graph) Namespace(id string) *Namespace {
	for _, n := range g.Namespaces {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Interface returns the interface node with the ID, or nil.
func (g *Graph) Interface(id string) *Interface {
	for _, n := range g.Namespaces {
		for _, i := range n.Interfaces {
			if i.ID == id {
				return i
			}
		}
	}
	return nil
}

// sortGraph puts the graph in a stable order: the host namespace first,
// then by inode; interfaces by index; processes by PID; edges by kind and
// ends.
func (g *Graph) sortGraph() {
	sort.SliceStable(g.Namespaces, func(i, j int) bool {
		a, b := g.Namespaces[i], g.Namespaces[j]
		if a.Host != b.Host {
			return a.Host
		}
		return a.Inode < b.Inode
	})
	for _, n := range g.Namespaces {
		sort.Slice(n.Interfaces, func(i, j int) bool { return n.Interfaces[i].Index < n.Interfaces[j].Index })
	}
	sort.Slice(g.Processes, func(i, j int) bool { return g.Processes[i].PID < g.Processes[j].PID })
	sort.Slice(g.Edges, func(i, j int) bool {
		a, b := g.Edges[i], g.Edges[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.From != b.From {
			return a.From < b.From
		}
		return a.To < b.To
	})
}
