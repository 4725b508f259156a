package topo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/netobs/netobs/internal/nlwire"
	"github.com/netobs/netobs/nsjoin"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// nlTimeout bounds every netlink answer, so that a namespace whose kernel
// side never answers cannot hang Build.
const nlTimeout = 5 * time.Second

// entry is one namespace Build knows of: drawn (shown) or only a place
// where the other end of a drawn interface may live.
type entry struct {
	ns    *nsjoin.NS
	own   bool // ns was opened by Build and is closed by it
	node  *Namespace
	shown bool

	loaded  bool
	loadErr error
	h       *netlink.Handle
	links   map[int]netlink.Link
	ifaces  map[int]*Interface
	order   []int // link indexes in dump order
	nsids   map[int]*entry
	queried map[*entry]bool
}

// builder assembles a graph. nsidOf and load are fields so that the
// assembly can be tested on synthetic namespaces.
type builder struct {
	entries []*entry
	// nsidOf returns the nsid cand has in from's nsid table, -1 if none.
	nsidOf func(from, cand *entry) (int, error)
	// load reads e's links and addresses into e.
	load func(e *entry) error
}

// Build returns the graph of the namespaces opts names.
func Build(opts Options) (*Graph, error) {
	g, err := build(opts)
	if err != nil {
		return nil, &Error{Op: "build topology", Err: err}
	}
	return g, nil
}

func build(opts Options) (*Graph, error) {
	if !opts.All && len(opts.Namespaces) == 0 {
		return nil, ErrNoNamespaces
	}
	for _, ns := range opts.Namespaces {
		if ns.Type() != nsjoin.Net {
			return nil, fmt.Errorf("%s: %w", ns.Ref(), &nsjoin.WrongTypeError{Got: ns.Type(), Want: nsjoin.Net})
		}
	}
	infos, err := listNet(opts.HostRoot)
	if err != nil {
		return nil, err
	}
	host := hostID(opts.HostRoot)
	b := &builder{nsidOf: kernelNSID, load: loadEntry}
	defer b.close()
	byID := map[[2]uint64]*entry{}
	for _, ns := range opts.Namespaces {
		id := ns.ID()
		k := [2]uint64{id.Dev, id.Inode}
		if byID[k] != nil {
			continue // named twice
		}
		e := &entry{ns: ns, shown: true, node: &Namespace{ID: NodeID(id.Inode), Inode: id.Inode}}
		byID[k] = e
		b.entries = append(b.entries, e)
	}
	for i := range infos {
		in := &infos[i]
		k := [2]uint64{in.ID.Dev, in.ID.Inode}
		e := byID[k]
		if e == nil {
			e = &entry{shown: opts.All, node: &Namespace{ID: NodeID(in.ID.Inode), Inode: in.ID.Inode}}
			e.ns, e.loadErr = openInfo(opts.HostRoot, in)
			e.own = e.ns != nil
			if e.ns == nil && errors.Is(e.loadErr, fs.ErrNotExist) {
				continue // gone since the scan
			}
			byID[k] = e
			b.entries = append(b.entries, e)
		}
		e.node.Names, e.node.PID, e.node.Command, e.node.NProcs = in.Names, in.PID, in.Command, in.NProcs
	}
	for _, e := range b.entries {
		if e.ns != nil {
			id := e.ns.ID()
			e.node.Host = id.Dev == host.Dev && id.Inode == host.Inode
		}
	}
	g := b.assemble()
	if err := findOwners(g, opts.HostRoot); err != nil {
		return nil, err
	}
	g.sortGraph()
	return g, nil
}

// listNet lists the network namespaces of the system whose / is root.
func listNet(root string) ([]nsjoin.Info, error) {
	if root == "" || root == "/" {
		return nsjoin.List(nsjoin.Net)
	}
	return nsjoin.ListUnder(root, nsjoin.Net)
}

// hostID returns the identity of the initial network namespace: PID 1's,
// or, where PID 1 cannot be looked at (a sandbox), kthreadd's: kernel
// threads always live in the initial namespaces.
func hostID(root string) nsjoin.ID {
	proc := filepath.Join(root, "/proc")
	paths := []string{proc + "/1/ns/net"}
	if b, err := os.ReadFile(proc + "/2/comm"); err == nil && string(b) == "kthreadd\n" {
		paths = append(paths, proc+"/2/ns/net")
	}
	for _, p := range paths {
		if ns, err := nsjoin.OpenFile(p); err == nil {
			defer ns.Close()
			return ns.ID()
		}
	}
	return nsjoin.ID{}
}

// OpenNamespace opens the network namespace whose node ID (as in the
// graph: "net:[INODE]") is id, found as Build finds it: by its `ip netns`
// name first, else through a process in it. It fails with fs.ErrNotExist
// when no such namespace exists now. The caller closes the handle. Needs
// the privilege to open other processes' namespaces (CAP_SYS_PTRACE).
func OpenNamespace(id string) (*nsjoin.NS, error) { return OpenNamespaceUnder("", id) }

// OpenNamespaceUnder is OpenNamespace on the system whose / is mounted at
// root (Options.HostRoot).
func OpenNamespaceUnder(root, id string) (*nsjoin.NS, error) {
	infos, err := listNet(root)
	if err != nil {
		return nil, &Error{Op: "open namespace " + id, Err: err}
	}
	for i := range infos {
		if NodeID(infos[i].ID.Inode) == id {
			ns, err := openInfo(root, &infos[i])
			if err != nil {
				return nil, &Error{Op: "open namespace " + id, Err: err}
			}
			return ns, nil
		}
	}
	return nil, &Error{Op: "open namespace " + id, Err: fs.ErrNotExist}
}

// openInfo opens a namespace List found, by name first (a name outlives
// processes), and checks that it is still the namespace List saw.
func openInfo(root string, in *nsjoin.Info) (*nsjoin.NS, error) {
	path := filepath.Join(root, fmt.Sprintf("/proc/%d/ns/net", in.PID))
	if len(in.Names) > 0 {
		path = filepath.Join(root, nsjoin.NetnsRunDir, in.Names[0])
	}
	ns, err := nsjoin.OpenFile(path)
	if err != nil {
		if errors.Is(err, nsjoin.ErrNoProcess) || errors.Is(err, nsjoin.ErrNotNamespace) {
			return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
		}
		return nil, err
	}
	if id := ns.ID(); id.Dev != in.ID.Dev || id.Inode != in.ID.Inode || ns.Type() != nsjoin.Net {
		ns.Close()
		return nil, fmt.Errorf("%s: %w (replaced since the scan)", path, fs.ErrNotExist)
	}
	return ns, nil
}

func (b *builder) close() {
	for _, e := range b.entries {
		if e.h != nil {
			e.h.Close()
			e.h = nil
		}
		if e.own && e.ns != nil {
			e.ns.Close()
		}
	}
}

// loadEntry makes a netlink socket inside e's namespace and dumps its
// links and addresses through it. The socket stays open for nsid
// questions until the builder closes.
func loadEntry(e *entry) error {
	if e.ns == nil {
		return errors.New("namespace not open")
	}
	var h *netlink.Handle
	err := e.ns.Do(func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return fmt.Errorf("netlink socket in %s: %w", e.ns, err)
	}
	e.h = h
	// Connected to the kernel, so that no process of the namespace can
	// make the read fail with a datagram of its own.
	if err := nlwire.ConnectHandle(h); err != nil {
		return fmt.Errorf("netlink socket in %s: %w", e.ns, err)
	}
	if err := h.SetSocketTimeout(nlTimeout); err != nil {
		return fmt.Errorf("netlink socket in %s: %w", e.ns, err)
	}
	links, err := dumpLinks(h)
	if err != nil {
		return fmt.Errorf("dump links of %s: %w", e.ns, err)
	}
	addrs, err := dumpAddrs(h)
	if err != nil {
		return fmt.Errorf("dump addresses of %s: %w", e.ns, err)
	}
	e.setLinks(links, addrs)
	return nil
}

// dumpLinks and dumpAddrs read again when the kernel says a dump was
// interrupted by a concurrent change; the library returns what it read
// with ErrDumpInterrupted.
func dumpLinks(h *netlink.Handle) ([]netlink.Link, error) {
	var err error
	for try := 0; try < 5; try++ {
		var links []netlink.Link
		links, err = h.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return links, err
		}
	}
	return nil, err
}

func dumpAddrs(h *netlink.Handle) ([]netlink.Addr, error) {
	var err error
	for try := 0; try < 5; try++ {
		var addrs []netlink.Addr
		addrs, err = h.AddrList(nil, netlink.FAMILY_ALL)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return addrs, err
		}
	}
	return nil, err
}

// kernelNSID asks from's namespace which nsid cand's namespace has in it.
func kernelNSID(from, cand *entry) (int, error) {
	if from.h == nil || cand.ns == nil {
		return -1, errors.New("namespace not open")
	}
	id, err := from.h.GetNetNsIdByFd(cand.ns.Fd())
	if err != nil {
		return -1, fmt.Errorf("nsid of %s in %s: %w", cand.ns, from.ns, err)
	}
	return id, nil
}

// setLinks turns dumped links and addresses into interface nodes.
func (e *entry) setLinks(links []netlink.Link, addrs []netlink.Addr) {
	e.loaded = true
	e.links = make(map[int]netlink.Link, len(links))
	e.ifaces = make(map[int]*Interface, len(links))
	for _, l := range links {
		a := l.Attrs()
		if _, dup := e.links[a.Index]; dup {
			continue
		}
		e.links[a.Index] = l
		e.order = append(e.order, a.Index)
		i := &Interface{
			ID:    InterfaceID(e.node.Inode, a.Index),
			NS:    e.node.ID,
			Index: a.Index,
			Name:  a.Name,
			Kind:  kindOf(l),
			State: strings.ToUpper(a.OperState.String()),
			Up:    a.RawFlags&unix.IFF_UP != 0,
			MTU:   a.MTU,
		}
		if st := a.Statistics; st != nil {
			i.Counters = &Counters{RxPackets: st.RxPackets, TxPackets: st.TxPackets, RxBytes: st.RxBytes, TxBytes: st.TxBytes, RxDropped: st.RxDropped, TxDropped: st.TxDropped}
		}
		if len(a.HardwareAddr) > 0 {
			i.MAC = a.HardwareAddr.String()
		}
		if a.ParentDevBus != "" || a.ParentDev != "" {
			i.Physical, i.Bus, i.Device = true, a.ParentDevBus, a.ParentDev
		}
		e.ifaces[a.Index] = i
		e.node.Interfaces = append(e.node.Interfaces, i)
	}
	for _, ad := range addrs {
		if i := e.ifaces[ad.LinkIndex]; i != nil && ad.IPNet != nil {
			i.Addrs = append(i.Addrs, ad.IPNet.String())
		}
	}
	for _, i := range e.ifaces {
		sort.Strings(i.Addrs)
	}
}

// kindOf names a link's kind as `ip -d link` does.
func kindOf(l netlink.Link) string {
	a := l.Attrs()
	if t, ok := l.(*netlink.Tuntap); ok {
		if t.Mode == netlink.TUNTAP_MODE_TUN {
			return "tun"
		}
		return "tap"
	}
	switch t := l.Type(); t {
	case "device", "":
		if a.RawFlags&unix.IFF_LOOPBACK != 0 {
			return "loopback"
		}
		return "device"
	default:
		return t
	}
}

// ensure loads e once; a failure is kept in e.loadErr.
func (b *builder) ensure(e *entry) bool {
	if !e.loaded && e.loadErr == nil {
		if err := b.load(e); err != nil {
			e.loadErr = err
		}
	}
	return e.loaded
}

// assemble loads the shown namespaces and draws their edges.
func (b *builder) assemble() *Graph {
	g := &Graph{}
	for _, e := range b.entries {
		if !e.shown {
			continue
		}
		b.ensure(e)
		if e.loadErr != nil {
			e.node.Err = e.loadErr.Error()
		}
		g.Namespaces = append(g.Namespaces, e.node)
	}
	seen := map[Edge]bool{}
	add := func(ed Edge) {
		if !seen[ed] {
			seen[ed] = true
			g.Edges = append(g.Edges, ed)
		}
	}
	for _, e := range b.entries {
		if !e.shown || !e.loaded {
			continue
		}
		for _, idx := range e.order {
			l, i := e.links[idx], e.ifaces[idx]
			a := l.Attrs()
			if a.MasterIndex != 0 {
				if m := e.ifaces[a.MasterIndex]; m != nil {
					i.Master = m.ID
					add(Edge{Kind: Port, From: i.ID, To: m.ID})
				}
			}
			other, otherIdx, ok := b.otherEnd(e, l)
			if !ok {
				continue
			}
			var to *Interface
			if other != nil && other.loaded {
				to = other.ifaces[otherIdx]
			}
			if to == nil || !other.shown {
				i.Unresolved = unresolved(other, otherIdx, a.NetNsID, to)
				continue
			}
			if l.Type() == "veth" {
				from, dst := i.ID, to.ID
				if dst < from {
					from, dst = dst, from
				}
				add(Edge{Kind: Veth, From: from, To: dst})
			} else {
				add(Edge{Kind: Parent, From: i.ID, To: to.ID})
			}
		}
	}
	return g
}

// unresolved says where the other end of a link is when it is not drawn.
func unresolved(other *entry, idx, nsid int, to *Interface) string {
	switch {
	case other == nil:
		return fmt.Sprintf("if%d in nsid %d", idx, nsid)
	case to != nil:
		return to.Name + "@" + other.node.Ref()
	}
	return fmt.Sprintf("if%d@%s", idx, other.node.Ref())
}

// otherEnd returns where the device a link stands on (the peer of a veth,
// the parent of a VLAN or macvlan) is: a namespace entry (nil if the nsid
// cannot be placed) and an index. ok is false for links with no other end.
func (b *builder) otherEnd(e *entry, l netlink.Link) (*entry, int, bool) {
	a := l.Attrs()
	if a.NetNsID < 0 {
		// Same namespace: IFLA_LINK is there unless it names the device
		// itself, which is no relation.
		if a.ParentIndex == 0 || a.ParentIndex == a.Index {
			return nil, 0, false
		}
		return e, a.ParentIndex, true
	}
	idx := a.ParentIndex
	if idx == 0 {
		// rtnetlink omits IFLA_LINK when it equals the device's own index.
		idx = a.Index
	}
	return b.resolve(e, a.NetNsID, idx, a.Index, l.Type() == "veth"), idx, true
}

// resolve finds the namespace that has nsid in from's nsid table. It asks
// the kernel about the likeliest namespaces first: those with a device at
// idx that (for a veth) points back at back. Every answer is remembered.
func (b *builder) resolve(from *entry, nsid, idx, back int, veth bool) *entry {
	if e, ok := from.nsids[nsid]; ok {
		return e
	}
	if from.nsids == nil {
		from.nsids, from.queried = map[int]*entry{}, map[*entry]bool{}
	}
	ask := func(c *entry) *entry {
		if c == from || from.queried[c] {
			return nil
		}
		from.queried[c] = true
		id, err := b.nsidOf(from, c)
		if err != nil || id < 0 {
			return nil
		}
		from.nsids[id] = c
		if id == nsid {
			return c
		}
		return nil
	}
	likely := func(c *entry) bool {
		l := c.links[idx]
		if l == nil {
			return false
		}
		if !veth {
			return true
		}
		p := l.Attrs().ParentIndex
		if p == 0 {
			p = idx
		}
		return l.Type() == "veth" && p == back
	}
	// Shown and loaded namespaces first, likely ones before the rest;
	// then the namespaces not drawn, which are loaded only now.
	for pass := 0; pass < 3; pass++ {
		for _, c := range b.entries {
			var try bool
			switch pass {
			case 0:
				try = c.loaded && likely(c)
			case 1:
				try = c.loaded
			case 2:
				try = !c.loaded && c.loadErr == nil
			}
			if try {
				if found := ask(c); found != nil {
					if pass == 2 {
						b.ensure(found)
					}
					return found
				}
			}
		}
	}
	from.nsids[nsid] = nil
	return nil
}
