package nstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/netobs/nsnet"
	"github.com/netobs/netobs/netobs/pktout"
	"github.com/netobs/netobs/nsjoin"
)

// NewNetNS returns a handle on a new network namespace with its loopback
// up and nothing else. The namespace has no name: the handle's Path is
// /proc/self/fd/N of a descriptor held until the test ends, which keeps
// Path naming it (package capture and events, given the handle, watch it
// until the end). At the end of the test the handle is closed and, once
// nothing else holds it, the kernel frees the namespace and every
// interface in it. Needs root (see RequireRoot).
func NewNetNS(tb testing.TB) *nsjoin.NS {
	tb.Helper()
	RequireRoot(tb)
	// Unnamed: held only by the handle, so nothing outlives the test
	// process, however it ends.
	ns, err := nsjoin.NewNet()
	if err != nil {
		tb.Fatalf("nstest: new network namespace: %v", err)
	}
	tb.Cleanup(func() { ns.Close() })
	loUp(tb, ns)
	return ns
}

// NewNamedNetNS is NewNetNS for a namespace that `ip netns` sees: it is
// bound under /run/netns with a name unique to the test run, which is the
// handle's Ref. At the end of the test the handle is closed and the name
// removed (if the test has not removed it already).
func NewNamedNetNS(tb testing.TB) *nsjoin.NS {
	tb.Helper()
	RequireRoot(tb)
	name := UniqueName("ns")
	ns, err := nsjoin.NewNamed(name)
	if err != nil {
		tb.Fatalf("nstest: new network namespace %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ns.Close()
		if err := nsjoin.DeleteNamed(name); err != nil && !errors.Is(err, nsjoin.ErrNotFound) {
			tb.Errorf("nstest: %v", err)
		}
	})
	loUp(tb, ns)
	return ns
}

// HostNS returns a handle on the test process's own network namespace,
// closed when the test ends: pass it to Veth or as an End to put an
// interface in the host. Interfaces a helper puts there are deleted when
// the test ends.
func HostNS(tb testing.TB) *nsjoin.NS {
	tb.Helper()
	ns, err := nsjoin.Self(nsjoin.Net)
	if err != nil {
		tb.Fatalf("nstest: %v", err)
	}
	tb.Cleanup(func() { ns.Close() })
	return ns
}

func loUp(tb testing.TB, ns *nsjoin.NS) {
	tb.Helper()
	h := handle(tb, ns)
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		tb.Fatalf("nstest: set lo up in %s: %v", ns, err)
	}
}

// handle returns a routing netlink handle whose socket was created inside
// ns, so that every request it makes is about ns. Only NETLINK_ROUTE
// requests may be made with it: netlink opens a socket for any other
// family in the caller's namespace.
func handle(tb testing.TB, ns *nsjoin.NS) *netlink.Handle {
	tb.Helper()
	var h *netlink.Handle
	err := ns.Do(func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		tb.Fatalf("nstest: netlink socket in %s: %v", ns, err)
	}
	return h
}

// Veth joins namespaces a and b (HostNS for the host) with a veth pair,
// gives the ends the addresses addrA and addrB ("10.0.0.1/24"; empty for
// none) and brings both up. The ends get run-unique names. The pair is
// deleted when the test ends. Use VethEnds for more addresses, chosen
// names or an MTU.
func Veth(tb testing.TB, a, b *nsjoin.NS, addrA, addrB string) (Link, Link) {
	tb.Helper()
	ea, eb := End{NS: a}, End{NS: b}
	if addrA != "" {
		ea.Addrs = []string{addrA}
	}
	if addrB != "" {
		eb.Addrs = []string{addrB}
	}
	return VethEnds(tb, ea, eb)
}

// VethEnds is Veth with every setting of each end.
func VethEnds(tb testing.TB, a, b End) (Link, Link) {
	tb.Helper()
	la, lb, hb := veth(tb, a, b)
	hb.Close()
	return la, lb
}

// veth makes the pair and returns a netlink handle in b's namespace, which
// the caller closes, for further configuration of b's end.
func veth(tb testing.TB, a, b End) (Link, Link, *netlink.Handle) {
	tb.Helper()
	if a.NS == nil || b.NS == nil {
		tb.Fatalf("nstest: veth needs a namespace for both ends (HostNS(tb) for the host)")
	}
	pa, err := parseAddrs(a.Addrs)
	if err != nil {
		tb.Fatalf("nstest: veth: %v", err)
	}
	pb, err := parseAddrs(b.Addrs)
	if err != nil {
		tb.Fatalf("nstest: veth: %v", err)
	}
	if a.Name == "" {
		a.Name = UniqueName("v")
	}
	if b.Name == "" {
		b.Name = UniqueName("v")
	}
	ha := handle(tb, a.NS)
	// The pair is deleted through a's handle (deleting one end deletes
	// both); the handle's socket also keeps a's namespace alive until then.
	var index int
	tb.Cleanup(func() {
		defer ha.Close()
		if index == 0 {
			return
		}
		err := ha.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: index}})
		if err != nil && !errors.Is(err, unix.ENODEV) {
			tb.Errorf("nstest: delete veth %s in %s: %v", a.Name, a.NS, err)
		}
	})
	hb := handle(tb, b.NS)
	// Both ends are created where they belong (IFLA_NET_NS_FD for each), so
	// neither appears in the host on the way, and a name is checked in the
	// namespace it goes to.
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: a.Name, MTU: a.MTU, Namespace: netlink.NsFd(a.NS.Fd())},
		PeerName:      b.Name,
		PeerMTU:       uint32(b.MTU),
		PeerNamespace: netlink.NsFd(b.NS.Fd()),
	}
	if err := ha.LinkAdd(v); err != nil {
		hb.Close()
		tb.Fatalf("nstest: add veth %s in %s, peer %s in %s: %v", a.Name, a.NS, b.Name, b.NS, err)
	}
	la, err := setUp(ha, a.NS, a.Name, pa)
	if err == nil {
		index = la.Index
	} else if l, lerr := ha.LinkByName(a.Name); lerr == nil {
		index = l.Attrs().Index
	}
	var lb Link
	if err == nil {
		lb, err = setUp(hb, b.NS, b.Name, pb)
	}
	if err != nil {
		hb.Close()
		tb.Fatalf("nstest: veth %s/%s: %v", a.Name, b.Name, err)
	}
	return la, lb, hb
}

func parseAddrs(addrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range addrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("address %q: want an address with prefix length, like 10.0.0.1/24", s)
		}
		out = append(out, p)
	}
	return out, nil
}

// setUp adds the addresses to the link named name and brings it up.
func setUp(h *netlink.Handle, ns *nsjoin.NS, name string, addrs []netip.Prefix) (Link, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		return Link{}, fmt.Errorf("find %s in %s: %w", name, ns, err)
	}
	for _, p := range addrs {
		if err := addAddr(h, l, p); err != nil {
			return Link{}, fmt.Errorf("add %s to %s in %s: %w", p, name, ns, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return Link{}, fmt.Errorf("set %s up in %s: %w", name, ns, err)
	}
	return Link{NS: ns, Name: name, Index: l.Attrs().Index, MAC: l.Attrs().HardwareAddr, Addrs: addrs}, nil
}

func addAddr(h *netlink.Handle, l netlink.Link, p netip.Prefix) error {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD // usable at once, like `ip addr add ... nodad`
	}
	return h.AddrAdd(l, a)
}

// AddAddr adds an address with prefix length ("10.0.0.5/24") to an
// interface that a helper made (or any link of the namespace, given its
// name) and returns the link with the address added.
func AddAddr(tb testing.TB, l Link, addr string) Link {
	tb.Helper()
	ps, err := parseAddrs([]string{addr})
	if err != nil {
		tb.Fatalf("nstest: %v", err)
	}
	h := handle(tb, l.NS)
	defer h.Close()
	nl, err := h.LinkByName(l.Name)
	if err == nil {
		err = addAddr(h, nl, ps[0])
	}
	if err != nil {
		tb.Fatalf("nstest: add %s to %s in %s: %v", addr, l.Name, l.NS, err)
	}
	l.Addrs = append(append([]netip.Prefix(nil), l.Addrs...), ps[0])
	return l
}

// AddRoute adds a route in ns to dst ("10.2.0.0/16", or "default" for
// 0.0.0.0/0) via the gateway gw ("10.1.0.1"), which must be reachable
// through one of ns's interfaces. The route goes away with the namespace
// or its interface.
func AddRoute(tb testing.TB, ns *nsjoin.NS, dst, gw string) {
	tb.Helper()
	g, err := netip.ParseAddr(gw)
	if err != nil {
		tb.Fatalf("nstest: route to %s: gateway %q is not an IP address", dst, gw)
	}
	var d netip.Prefix
	switch {
	case dst == "default" && g.Is4():
		d = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	case dst == "default":
		d = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	default:
		if d, err = netip.ParsePrefix(dst); err != nil {
			tb.Fatalf("nstest: route to %q: want a prefix like 10.2.0.0/16, or default", dst)
		}
	}
	h := handle(tb, ns)
	defer h.Close()
	r := &netlink.Route{
		Dst: &net.IPNet{IP: d.Masked().Addr().AsSlice(), Mask: net.CIDRMask(d.Bits(), d.Addr().BitLen())},
		Gw:  g.AsSlice(),
	}
	if err := h.RouteAdd(r); err != nil {
		tb.Fatalf("nstest: add route to %s via %s in %s: %v", dst, gw, ns, err)
	}
}

// Bridge makes a bridge in hub, with the address addr (empty for none),
// and joins each member to it: a veth pair with one end in the member's
// namespace (its name, addresses and MTU as the End says, up) and the
// other in hub, attached to the bridge and up. It returns the bridge and
// the members' ends, in order. Everything is deleted when the test ends.
func Bridge(tb testing.TB, hub *nsjoin.NS, addr string, members ...End) (Link, []Link) {
	tb.Helper()
	if hub == nil {
		tb.Fatalf("nstest: bridge needs a namespace (HostNS(tb) for the host)")
	}
	var baddrs []string
	if addr != "" {
		baddrs = []string{addr}
	}
	pb, err := parseAddrs(baddrs)
	if err != nil {
		tb.Fatalf("nstest: bridge: %v", err)
	}
	name := UniqueName("br")
	h := handle(tb, hub)
	var index int
	tb.Cleanup(func() {
		defer h.Close()
		if index == 0 {
			return
		}
		if err := h.LinkDel(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Index: index}}); err != nil && !errors.Is(err, unix.ENODEV) {
			tb.Errorf("nstest: delete bridge %s in %s: %v", name, hub, err)
		}
	})
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		tb.Fatalf("nstest: add bridge %s in %s: %v", name, hub, err)
	}
	br, err := setUp(h, hub, name, pb)
	if err != nil {
		if l, lerr := h.LinkByName(name); lerr == nil {
			index = l.Attrs().Index
		}
		tb.Fatalf("nstest: bridge: %v", err)
	}
	index = br.Index
	master := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, Index: br.Index}}
	var ends []Link
	for _, m := range members {
		// The member's end is made first in the pair so that its cleanup
		// (deleting the pair) runs before the bridge's.
		lm, lp, hp := veth(tb, m, End{NS: hub})
		err := hp.LinkSetMaster(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: lp.Index}}, master)
		hp.Close()
		if err != nil {
			tb.Fatalf("nstest: attach %s to bridge %s in %s: %v", lp.Name, name, hub, err)
		}
		ends = append(ends, lm)
	}
	return br, ends
}

// Listen is nsnet.Listen for a test: a listener created inside ns
// ("tcp", "127.0.0.1:8080"; addresses are numeric), closed when the test
// ends. It is an ordinary net.Listener (a *net.TCPListener for TCP).
func Listen(tb testing.TB, ns *nsjoin.NS, network, address string) net.Listener {
	tb.Helper()
	ln, err := nsnet.Listen(ns, network, address)
	if err != nil {
		tb.Fatalf("nstest: %v", err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln
}

// ListenPacket is nsnet.ListenPacket for a test: a UDP (or unixgram)
// socket bound inside ns, closed when the test ends.
func ListenPacket(tb testing.TB, ns *nsjoin.NS, network, address string) net.PacketConn {
	tb.Helper()
	pc, err := nsnet.ListenPacket(ns, network, address)
	if err != nil {
		tb.Fatalf("nstest: %v", err)
	}
	tb.Cleanup(func() { pc.Close() })
	return pc
}

// Dial is nsnet.Dial for a test: a connection made from inside ns, closed
// when the test ends. It is an ordinary net.Conn (a *net.TCPConn for TCP).
func Dial(tb testing.TB, ns *nsjoin.NS, network, address string) net.Conn {
	tb.Helper()
	c, err := nsnet.Dial(ns, network, address)
	if err != nil {
		tb.Fatalf("nstest: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// Capture records the packets on interface iface of ns ("any" or empty
// for every interface) that pass filter (a tcpdump expression; empty for
// all), from the moment it returns until Stop or the end of the test.
// Packets are handed over at once (capture's Immediate mode). Needs
// CAP_NET_RAW (root) and a cgo build for a filter.
func Capture(tb testing.TB, ns *nsjoin.NS, iface, filter string) *Recorder[Packet] {
	tb.Helper()
	RequireRoot(tb)
	cfg := capture.Config{Filter: filter, Immediate: true}
	if iface != "" {
		cfg.Interfaces = []string{iface}
	}
	c, err := capture.Open([]capture.Target{{NS: ns}}, cfg)
	if err != nil {
		tb.Fatalf("nstest: %v", err)
	}
	r := newRecorder[Packet]()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := c.Run(ctx, recordPackets{r})
		if errors.Is(err, context.Canceled) || errors.Is(err, capture.ErrClosed) {
			err = nil
		}
		r.end(err)
	}()
	r.stop = func() {
		cancel()
		<-done
		c.Close()
	}
	tb.Cleanup(func() { r.Stop() })
	return r
}

// recordPackets is the capture.Handler of Capture.
type recordPackets struct{ r *Recorder[Packet] }

func (h recordPackets) Packet(p *capture.Packet) error {
	s := pktout.Summarize(p)
	data := make([]byte, 0, p.CaptureLength())
	data = append(append(data, p.Head...), p.Data...)
	h.r.add(Packet{
		Interface: p.Interface.Name, Time: p.Timestamp(), Length: p.Length, Data: data, Outgoing: p.Outgoing,
		Proto: s.Proto, Src: s.Src, Dst: s.Dst, SrcPort: s.SrcPort, DstPort: s.DstPort, Summary: s.Summary,
	})
	return nil
}

func (recordPackets) Flush() error                               { return nil }
func (recordPackets) Ended(ifc *capture.Interface, reason error) {}

// Events records the link, address and route changes in ns, from the
// moment it returns (the namespace's state is read by then, so every later
// change is recorded) until Stop or the end of the test. kinds chooses
// others (events.KindsAll, ...); none means link, addr and route.
func Events(tb testing.TB, ns *nsjoin.NS, kinds ...events.Kind) *Recorder[events.Event] {
	tb.Helper()
	var set events.Kinds
	for _, k := range kinds {
		set = set.With(k)
	}
	if set == 0 {
		set = set.With(events.Link).With(events.Addr).With(events.Route)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := events.New(ctx, []*nsjoin.NS{ns}, events.Options{Kinds: set})
	if err != nil {
		cancel()
		tb.Fatalf("nstest: %v", err)
	}
	r := newRecorder[events.Event]()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.Events() {
			r.add(ev)
		}
		r.end(w.Err())
	}()
	r.stop = func() {
		cancel()
		w.Close()
		<-done
	}
	tb.Cleanup(func() { r.Stop() })
	select {
	case <-w.Ready():
	case <-done:
	}
	if err := r.Err(); err != nil {
		tb.Fatalf("nstest: watch %s: %v", ns, err)
	}
	return r
}
