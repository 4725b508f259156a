package topo

import (
	"encoding/binary"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// rtattr encodes one routing attribute.
func rtattr(typ uint16, val []byte) []byte {
	l := unix.SizeofRtAttr + len(val)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b, uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[unix.SizeofRtAttr:], val)
	return b
}

func u32b(v uint32) []byte { b := make([]byte, 4); binary.NativeEndian.PutUint32(b, v); return b }

// linkMsg builds an RTM_NEWLINK as the kernel sends it and parses it with
// the netlink library, as a dump does: kind, index, name, and IFLA_LINK
// and IFLA_LINK_NETNSID only when given (>= 0).
func linkMsg(t *testing.T, kind string, index int, name string, link, netnsid, master int) netlink.Link {
	t.Helper()
	msg := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(msg[4:], uint32(index))
	msg = append(msg, rtattr(unix.IFLA_IFNAME, append([]byte(name), 0))...)
	msg = append(msg, rtattr(unix.IFLA_MTU, u32b(1500))...)
	if link >= 0 {
		msg = append(msg, rtattr(unix.IFLA_LINK, u32b(uint32(link)))...)
	}
	if netnsid >= 0 {
		msg = append(msg, rtattr(unix.IFLA_LINK_NETNSID, u32b(uint32(netnsid)))...)
	}
	if master > 0 {
		msg = append(msg, rtattr(unix.IFLA_MASTER, u32b(uint32(master)))...)
	}
	if kind != "" {
		msg = append(msg, rtattr(unix.IFLA_LINKINFO, rtattr(unix.IFLA_INFO_KIND, append([]byte(kind), 0)))...)
	}
	h := &unix.NlMsghdr{Len: uint32(unix.NLMSG_HDRLEN + len(msg)), Type: unix.RTM_NEWLINK}
	l, err := netlink.LinkDeserialize(h, msg)
	if err != nil {
		t.Fatalf("deserialize %s: %v", name, err)
	}
	return l
}

// synthetic builds a builder over namespaces given as links, with nsid
// tables given as maps from (namespace, nsid) to namespace.
func synthetic(t *testing.T, shown []bool, links [][]netlink.Link, nsids map[[2]int]int) (*builder, []*entry) {
	t.Helper()
	b := &builder{}
	var es []*entry
	for k := range links {
		e := &entry{shown: shown[k], node: &Namespace{ID: NodeID(uint64(100 + k)), Inode: uint64(100 + k), Names: []string{"n" + string(rune('0'+k))}}}
		es = append(es, e)
		b.entries = append(b.entries, e)
	}
	pos := map[*entry]int{}
	for k, e := range es {
		pos[e] = k
	}
	b.load = func(e *entry) error { e.setLinks(links[pos[e]], nil); return nil }
	b.nsidOf = func(from, cand *entry) (int, error) {
		for k, v := range nsids {
			if k[0] == pos[from] && v == pos[cand] {
				return k[1], nil
			}
		}
		return -1, nil
	}
	// Entries must look open to be asked about.
	for _, e := range es {
		e.ns = nil
	}
	return b, es
}

func edgeList(g *Graph) string {
	var s []string
	for _, e := range g.Edges {
		s = append(s, string(e.Kind)+" "+e.From+" "+e.To)
	}
	sort.Strings(s)
	return strings.Join(s, "\n")
}

// TestAssembleStacked: VLAN, macvlan and ipvlan devices on parents in the
// same namespace and in another one, where rtnetlink leaves IFLA_LINK out
// because the parent has the device's own index; veth peers likewise; an
// nsid no namespace has makes no edge.
func TestAssembleStacked(t *testing.T) {
	host := []netlink.Link{
		linkMsg(t, "", 1, "lo", -1, -1, 0),
		linkMsg(t, "", 2, "eth0", -1, -1, 0),
		linkMsg(t, "vlan", 3, "eth0.10", 2, -1, 0),
		linkMsg(t, "bridge", 4, "br0", -1, -1, 0),
		linkMsg(t, "veth", 5, "vh", 2, 0, 4), // peer index 2 in ctr (nsid 0 here)
		linkMsg(t, "bond", 6, "bond0", -1, -1, 0),
		linkMsg(t, "", 7, "eth1", -1, -1, 6),
	}
	ctr := []netlink.Link{
		linkMsg(t, "", 1, "lo", -1, -1, 0),
		linkMsg(t, "veth", 2, "eth0", 5, 3, 0),      // peer 5 in host (nsid 3 here)
		linkMsg(t, "macvlan", 4, "mv0", 2, 3, 0),    // parent eth0 (2) in host
		linkMsg(t, "ipvlan", 6, "ipv0", -1, 3, 0),   // parent at its own index 6 in host: bond0
		linkMsg(t, "veth", 7, "ve7", -1, 3, 0),      // peer at index 7 in host: eth1, not a veth
		linkMsg(t, "macvlan", 8, "mv8", 2, 9, 0),    // nsid 9: nothing
		linkMsg(t, "vlan", 9, "eth0.20", 2, -1, 0),  // parent in the same namespace
		linkMsg(t, "veth", 10, "same", -1, -1, 0),   // no peer information at all
		linkMsg(t, "veth", 11, "loop", 11, -1, 0),   // names itself: no relation
		linkMsg(t, "vlan", 12, "v.gone", 99, -1, 0), // parent index that does not exist
	}
	b, es := synthetic(t, []bool{true, true}, [][]netlink.Link{host, ctr}, map[[2]int]int{{0, 0}: 1, {1, 3}: 0})
	g := b.assemble()
	h, c := es[0].node.Inode, es[1].node.Inode
	want := []string{
		"parent " + InterfaceID(h, 3) + " " + InterfaceID(h, 2),
		"parent " + InterfaceID(c, 4) + " " + InterfaceID(h, 2),
		"parent " + InterfaceID(c, 6) + " " + InterfaceID(h, 6),
		"parent " + InterfaceID(c, 9) + " " + InterfaceID(c, 2),
		"port " + InterfaceID(h, 5) + " " + InterfaceID(h, 4),
		"port " + InterfaceID(h, 7) + " " + InterfaceID(h, 6),
		"veth " + InterfaceID(h, 5) + " " + InterfaceID(c, 2),
		"veth " + InterfaceID(h, 7) + " " + InterfaceID(c, 7),
	}
	sort.Strings(want)
	if got := edgeList(g); got != strings.Join(want, "\n") {
		t.Errorf("edges:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if u := g.Interface(InterfaceID(c, 8)).Unresolved; u != "if2 in nsid 9" {
		t.Errorf("mv8 unresolved %q, want if2 in nsid 9", u)
	}
	if u := g.Interface(InterfaceID(c, 12)).Unresolved; u != "if99@n1" {
		t.Errorf("v.gone unresolved %q, want if99@n1", u)
	}
	if m := g.Interface(InterfaceID(h, 5)).Master; m != InterfaceID(h, 4) {
		t.Errorf("vh master %q", m)
	}
}

// TestAssembleHiddenPeer: a namespace that is not drawn is loaded only to
// name the other end; no edge points into it.
func TestAssembleHiddenPeer(t *testing.T) {
	a := []netlink.Link{linkMsg(t, "veth", 2, "eth0", -1, 0, 0)}
	hidden := []netlink.Link{linkMsg(t, "veth", 2, "peer0", -1, 5, 0)}
	b, es := synthetic(t, []bool{true, false}, [][]netlink.Link{a, hidden}, map[[2]int]int{{0, 0}: 1, {1, 5}: 0})
	g := b.assemble()
	if len(g.Edges) != 0 || len(g.Namespaces) != 1 {
		t.Fatalf("edges %v, %d namespaces; want none and 1", g.Edges, len(g.Namespaces))
	}
	if u := g.Interface(InterfaceID(es[0].node.Inode, 2)).Unresolved; u != "peer0@n1" {
		t.Errorf("unresolved %q, want peer0@n1", u)
	}
}
