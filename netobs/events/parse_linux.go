package events

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/netobs/netobs/internal/nlwire"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// record is one parsed routing-netlink message.
type record struct {
	kind  Kind
	del   bool
	key   string
	text  string
	index int32
	dev   string
	notes []string
	obj   any
	// stateless records are reported but not kept: the dump used to
	// resync would never show them (bridge fdb and proxy neighbours), so
	// keeping them would make every resync report them deleted.
	stateless bool
	// replaceBase, for a route replaced in place (NLM_F_REPLACE), is the
	// key prefix shared by the routes it replaced.
	replaceBase string
	// link only
	name       string
	flags      uint32
	newNetnsID int32
}

// obj is what a namespace's state keeps of one object.
type obj struct {
	kind  Kind
	text  string
	index int32
	// link only: the name and flags, to label other objects and to notice
	// renames and up/down transitions.
	name  string
	flags uint32
}

var native = binary.NativeEndian

// kindOfType maps a message type to its kind and whether it deletes.
func kindOfType(t uint16) (Kind, bool, bool) {
	switch t {
	case unix.RTM_NEWLINK:
		return Link, false, true
	case unix.RTM_DELLINK:
		return Link, true, true
	case unix.RTM_NEWADDR:
		return Addr, false, true
	case unix.RTM_DELADDR:
		return Addr, true, true
	case unix.RTM_NEWROUTE:
		return Route, false, true
	case unix.RTM_DELROUTE:
		return Route, true, true
	case unix.RTM_NEWNEIGH:
		return Neigh, false, true
	case unix.RTM_DELNEIGH:
		return Neigh, true, true
	case unix.RTM_NEWRULE:
		return Rule, false, true
	case unix.RTM_DELRULE:
		return Rule, true, true
	case unix.RTM_NEWNSID:
		return NSID, false, true
	case unix.RTM_DELNSID:
		return NSID, true, true
	}
	return 0, false, false
}

// parse turns one message into a record. names resolves interface indexes
// of the same namespace. ok is false for messages that are not reported
// (unknown types, cached routes).
func parse(h *unix.NlMsghdr, payload []byte, names func(int32) string) (r record, ok bool, err error) {
	kind, del, known := kindOfType(h.Type)
	if !known {
		return r, false, nil
	}
	r.kind, r.del = kind, del
	switch kind {
	case Link:
		err = parseLink(&r, payload, names)
	case Addr:
		err = parseAddr(&r, payload, names)
	case Route:
		ok, err = parseRoute(&r, h, payload, names)
		if !ok || err != nil {
			return r, false, err
		}
	case Neigh:
		err = parseNeigh(&r, payload, names)
	case Rule:
		err = parseRule(&r, payload)
	case NSID:
		err = parseNSID(&r, payload)
	}
	if err != nil {
		return r, false, fmt.Errorf("parse %s message: %w", kind, err)
	}
	return r, true, nil
}

func short(what string, n int) error { return fmt.Errorf("%s: message too short (%d bytes)", what, n) }

// attrs parses route attributes without trusting their lengths (the
// netlink library's ParseRouteAttr panics on a last attribute whose
// length is not a multiple of 4).
func attrs(b []byte) ([]nlwire.Attr, error) { return nlwire.Attrs(b) }

func u32(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return native.Uint32(b)
}

// parseLink reads an RTM_NEWLINK/RTM_DELLINK itself: the netlink library's
// LinkDeserialize indexes attribute values without checking their length
// (and panics on a short one), so it never sees outside input.
func parseLink(r *record, payload []byte, names func(int32) string) error {
	if len(payload) < unix.SizeofIfInfomsg {
		return short("link", len(payload))
	}
	// Copied: the Link escapes in the event and keeps slices of it.
	payload = bytes.Clone(payload)
	a := netlink.NewLinkAttrs()
	a.NetNsID = -1
	ifiType := native.Uint16(payload[2:4])
	a.Index = int(int32(native.Uint32(payload[4:8])))
	a.RawFlags = native.Uint32(payload[8:12])
	a.EncapType = (&nl.IfInfomsg{IfInfomsg: unix.IfInfomsg{Type: ifiType}}).EncapType()
	as, err := attrs(payload[unix.SizeofIfInfomsg:])
	if err != nil {
		return err
	}
	kind := ""
	r.newNetnsID = -1
	for _, at := range as {
		v, has32 := at.Uint32()
		switch at.Type {
		case unix.IFLA_IFNAME:
			a.Name = at.String()
		case unix.IFLA_MTU:
			a.MTU = int(v)
		case unix.IFLA_LINK:
			a.ParentIndex = int(int32(v))
		case unix.IFLA_MASTER:
			a.MasterIndex = int(int32(v))
		case unix.IFLA_TXQLEN:
			a.TxQLen = int(v)
		case unix.IFLA_OPERSTATE:
			if len(at.Value) > 0 {
				a.OperState = netlink.LinkOperState(at.Value[0])
			}
		case unix.IFLA_ADDRESS:
			if bytes.ContainsFunc(at.Value, func(c rune) bool { return c != 0 }) {
				a.HardwareAddr = net.HardwareAddr(at.Value)
			}
		case unix.IFLA_LINK_NETNSID:
			if has32 {
				a.NetNsID = int(int32(v))
			}
		case unix.IFLA_NEW_NETNSID:
			if has32 {
				r.newNetnsID = int32(v)
			}
		case unix.IFLA_LINKINFO:
			if infos, err := attrs(at.Value); err == nil {
				for _, in := range infos {
					if in.Type == unix.IFLA_INFO_KIND {
						kind = in.String()
					}
				}
			}
		}
	}
	var l netlink.Link = &netlink.Device{LinkAttrs: a}
	if kind != "" {
		l = &netlink.GenericLink{LinkAttrs: a, LinkType: kind}
	}
	r.obj, r.index, r.name, r.flags = l, int32(a.Index), a.Name, a.RawFlags
	r.dev = a.Name
	r.key = "link " + strconv.Itoa(a.Index)
	var b strings.Builder
	fmt.Fprintf(&b, "%d: %s", a.Index, a.Name)
	if a.ParentIndex != 0 && a.ParentIndex != a.Index {
		if peer := names(int32(a.ParentIndex)); peer != "" && a.NetNsID < 0 {
			b.WriteString("@" + peer)
		} else {
			fmt.Fprintf(&b, "@if%d", a.ParentIndex)
		}
	}
	fmt.Fprintf(&b, ": <%s> mtu %d", linkFlags(a.RawFlags), a.MTU)
	if a.MasterIndex != 0 {
		if m := names(int32(a.MasterIndex)); m != "" {
			b.WriteString(" master " + m)
		} else {
			fmt.Fprintf(&b, " master if%d", a.MasterIndex)
		}
	}
	fmt.Fprintf(&b, " state %s", strings.ToUpper(a.OperState.String()))
	if kind != "" {
		b.WriteString(" type " + kind)
	}
	if len(a.HardwareAddr) > 0 {
		enc := a.EncapType
		if enc == "" {
			enc = "ether"
		}
		fmt.Fprintf(&b, " link/%s %s", enc, a.HardwareAddr)
	}
	if a.NetNsID >= 0 {
		fmt.Fprintf(&b, " link-netnsid %d", a.NetNsID)
	}
	r.text = b.String()
	return nil
}

var flagNames = []struct {
	bit  uint32
	name string
}{
	{unix.IFF_LOOPBACK, "LOOPBACK"}, {unix.IFF_BROADCAST, "BROADCAST"},
	{unix.IFF_POINTOPOINT, "POINTOPOINT"}, {unix.IFF_MULTICAST, "MULTICAST"},
	{unix.IFF_NOARP, "NOARP"}, {unix.IFF_ALLMULTI, "ALLMULTI"},
	{unix.IFF_PROMISC, "PROMISC"}, {unix.IFF_MASTER, "MASTER"},
	{unix.IFF_SLAVE, "SLAVE"}, {unix.IFF_UP, "UP"},
	{unix.IFF_LOWER_UP, "LOWER_UP"}, {unix.IFF_DORMANT, "DORMANT"},
}

// linkFlags spells interface flags the way ip does, NO-CARRIER included.
func linkFlags(f uint32) string {
	var parts []string
	if f&unix.IFF_UP != 0 && f&unix.IFF_LOWER_UP == 0 {
		parts = append(parts, "NO-CARRIER")
	}
	for _, fl := range flagNames {
		if f&fl.bit != 0 {
			parts = append(parts, fl.name)
		}
	}
	return strings.Join(parts, ",")
}

func ipString(b []byte) string {
	if a, ok := netip.AddrFromSlice(b); ok {
		return a.Unmap().String()
	}
	return fmt.Sprintf("%x", b)
}

func familyName(f uint8) string {
	switch f {
	case unix.AF_INET:
		return "inet"
	case unix.AF_INET6:
		return "inet6"
	case unix.AF_BRIDGE:
		return "bridge"
	case unix.AF_MPLS:
		return "mpls"
	case 128: // RTNL_FAMILY_IPMR
		return "ipmr"
	case 129: // RTNL_FAMILY_IP6MR
		return "ip6mr"
	}
	return "family" + strconv.Itoa(int(f))
}

func scopeName(s uint8) string {
	switch s {
	case unix.RT_SCOPE_UNIVERSE:
		return "global"
	case unix.RT_SCOPE_SITE:
		return "site"
	case unix.RT_SCOPE_LINK:
		return "link"
	case unix.RT_SCOPE_HOST:
		return "host"
	case unix.RT_SCOPE_NOWHERE:
		return "nowhere"
	}
	return strconv.Itoa(int(s))
}

func devName(idx int32, names func(int32) string) string {
	if n := names(idx); n != "" {
		return n
	}
	return "if" + strconv.Itoa(int(idx))
}

func parseAddr(r *record, payload []byte, names func(int32) string) error {
	if len(payload) < unix.SizeofIfAddrmsg {
		return short("addr", len(payload))
	}
	m := nl.DeserializeIfAddrmsg(payload)
	as, err := attrs(payload[unix.SizeofIfAddrmsg:])
	if err != nil {
		return err
	}
	var local, address, brd, label string
	flags := uint32(m.Flags)
	for _, at := range as {
		switch at.Type {
		case unix.IFA_LOCAL:
			local = ipString(at.Value)
		case unix.IFA_ADDRESS:
			address = ipString(at.Value)
		case unix.IFA_BROADCAST:
			brd = ipString(at.Value)
		case unix.IFA_LABEL:
			label = strings.TrimRight(string(at.Value), "\x00")
		case unix.IFA_FLAGS:
			flags = u32(at.Value)
		}
	}
	r.index = int32(m.Index)
	r.dev = devName(r.index, names)
	prefix := local
	peer := ""
	if prefix == "" {
		prefix = address
	} else if address != "" && address != local {
		peer = address
	}
	fam := familyName(m.Family)
	r.key = fmt.Sprintf("addr %d %s %s/%d", m.Index, fam, prefix, m.Prefixlen)
	var b strings.Builder
	fmt.Fprintf(&b, "%d: %s %s %s", m.Index, r.dev, fam, prefix)
	if peer != "" {
		r.key += " peer " + peer
		fmt.Fprintf(&b, " peer %s/%d", peer, m.Prefixlen)
	} else {
		fmt.Fprintf(&b, "/%d", m.Prefixlen)
	}
	if brd != "" {
		b.WriteString(" brd " + brd)
	}
	b.WriteString(" scope " + scopeName(m.Scope))
	for _, f := range []struct {
		bit  uint32
		name string
	}{
		{unix.IFA_F_SECONDARY, "secondary"}, {unix.IFA_F_NODAD, "nodad"},
		{unix.IFA_F_DADFAILED, "dadfailed"}, {unix.IFA_F_DEPRECATED, "deprecated"},
		{unix.IFA_F_TENTATIVE, "tentative"}, {unix.IFA_F_NOPREFIXROUTE, "noprefixroute"},
	} {
		if flags&f.bit != 0 {
			b.WriteString(" " + f.name)
		}
	}
	if m.Family == unix.AF_INET6 && flags&unix.IFA_F_PERMANENT == 0 {
		b.WriteString(" dynamic")
	}
	if label != "" && label != r.dev {
		b.WriteString(" label " + label)
	}
	r.text = b.String()
	return nil
}

var protoNames = map[uint8]string{
	unix.RTPROT_REDIRECT: "redirect", unix.RTPROT_KERNEL: "kernel", unix.RTPROT_BOOT: "boot",
	unix.RTPROT_STATIC: "static", unix.RTPROT_RA: "ra", unix.RTPROT_DHCP: "dhcp",
	unix.RTPROT_BGP: "bgp", unix.RTPROT_OSPF: "ospf", unix.RTPROT_BIRD: "bird",
}

var typeNames = map[uint8]string{
	unix.RTN_UNSPEC: "none", unix.RTN_LOCAL: "local", unix.RTN_BROADCAST: "broadcast",
	unix.RTN_ANYCAST: "anycast", unix.RTN_MULTICAST: "multicast", unix.RTN_BLACKHOLE: "blackhole",
	unix.RTN_UNREACHABLE: "unreachable", unix.RTN_PROHIBIT: "prohibit", unix.RTN_THROW: "throw",
	unix.RTN_NAT: "nat", unix.RTN_XRESOLVE: "xresolve",
}

func tableName(t uint32) string {
	switch t {
	case unix.RT_TABLE_MAIN:
		return "main"
	case unix.RT_TABLE_LOCAL:
		return "local"
	case unix.RT_TABLE_DEFAULT:
		return "default"
	}
	return strconv.FormatUint(uint64(t), 10)
}

func parseRoute(r *record, h *unix.NlMsghdr, payload []byte, names func(int32) string) (bool, error) {
	if len(payload) < unix.SizeofRtMsg {
		return false, short("route", len(payload))
	}
	m := nl.DeserializeRtMsg(payload)
	if m.Flags&unix.RTM_F_CLONED != 0 {
		// Cached clones (PMTU exceptions, redirects) are not routes anyone
		// configured, and route dumps do not show them.
		return false, nil
	}
	as, err := attrs(payload[unix.SizeofRtMsg:])
	if err != nil {
		return false, err
	}
	table := uint32(m.Table)
	var dst, src, gw, prefsrc string
	var oif int32
	var metric uint32
	var hasMetric bool
	var hops []string
	pref := ""
	for _, at := range as {
		switch at.Type {
		case unix.RTA_DST:
			dst = ipString(at.Value)
		case unix.RTA_SRC:
			src = ipString(at.Value)
		case unix.RTA_GATEWAY:
			gw = ipString(at.Value)
		case unix.RTA_OIF:
			oif = int32(u32(at.Value))
		case unix.RTA_PRIORITY:
			metric, hasMetric = u32(at.Value), true
		case unix.RTA_PREFSRC:
			prefsrc = ipString(at.Value)
		case unix.RTA_TABLE:
			table = u32(at.Value)
		case unix.RTA_MULTIPATH:
			hops = parseNexthops(at.Value, names)
		case unix.RTA_PREF:
			if len(at.Value) > 0 {
				pref = map[uint8]string{0: "medium", 1: "high", 3: "low"}[at.Value[0]]
			}
		}
	}
	fam := familyName(m.Family)
	full := func(a string, l uint8) string {
		if a == "" {
			if l == 0 {
				return "default"
			}
			a = "0.0.0.0"
			if m.Family == unix.AF_INET6 {
				a = "::"
			}
		}
		if (m.Family == unix.AF_INET && l == 32) || (m.Family == unix.AF_INET6 && l == 128) {
			return a
		}
		return fmt.Sprintf("%s/%d", a, l)
	}
	dstS := full(dst, m.Dst_len)
	r.index = oif
	if oif != 0 {
		r.dev = devName(oif, names)
	}
	var b strings.Builder
	if m.Type != unix.RTN_UNICAST {
		tn := typeNames[m.Type]
		if tn == "" {
			tn = "type" + strconv.Itoa(int(m.Type))
		}
		b.WriteString(tn + " ")
	}
	b.WriteString(dstS)
	if m.Src_len != 0 || src != "" {
		b.WriteString(" from " + full(src, m.Src_len))
	}
	if m.Tos != 0 {
		fmt.Fprintf(&b, " tos %#x", m.Tos)
	}
	if gw != "" {
		b.WriteString(" via " + gw)
	}
	if oif != 0 {
		b.WriteString(" dev " + r.dev)
	}
	if table != unix.RT_TABLE_MAIN {
		b.WriteString(" table " + tableName(table))
	}
	if m.Protocol != unix.RTPROT_BOOT {
		p := protoNames[m.Protocol]
		if p == "" {
			p = strconv.Itoa(int(m.Protocol))
		}
		b.WriteString(" proto " + p)
	}
	if m.Scope != unix.RT_SCOPE_UNIVERSE {
		b.WriteString(" scope " + scopeName(m.Scope))
	}
	if prefsrc != "" {
		b.WriteString(" src " + prefsrc)
	}
	if hasMetric {
		fmt.Fprintf(&b, " metric %d", metric)
	}
	if m.Flags&unix.RTNH_F_DEAD != 0 {
		b.WriteString(" dead")
	}
	if m.Flags&unix.RTNH_F_LINKDOWN != 0 {
		b.WriteString(" linkdown")
	}
	if pref != "" {
		b.WriteString(" pref " + pref)
	}
	for _, hop := range hops {
		b.WriteString(" nexthop " + hop)
	}
	r.text = b.String()
	// The kernel's identity of a route: family, table, destination, tos
	// and metric. The device, type and gateway are part of the key too,
	// because routes added by the kernel (with NLM_F_APPEND) may share the
	// rest, such as the prefix routes of two interfaces on one subnet.
	base := fmt.Sprintf("route %s table %d %s/%d from %s/%d tos %d metric %d", fam, table, dst, m.Dst_len, src, m.Src_len, m.Tos, metric)
	r.key = fmt.Sprintf("%s dev %d type %d via %s", base, oif, m.Type, gw)
	if !r.del && h.Flags&unix.NLM_F_REPLACE != 0 {
		r.replaceBase = base + " "
	}
	return true, nil
}

func parseNexthops(b []byte, names func(int32) string) []string {
	var hops []string
	for len(b) >= unix.SizeofRtNexthop {
		nh := nl.DeserializeRtNexthop(b)
		l := int(nh.RtNexthop.Len)
		// l may be odd: the walk steps by its aligned length, at most what
		// is left.
		if l < unix.SizeofRtNexthop || l > len(b) {
			break
		}
		s := ""
		if as, err := attrs(b[unix.SizeofRtNexthop:l]); err == nil {
			for _, at := range as {
				if at.Type == unix.RTA_GATEWAY {
					s = "via " + ipString(at.Value) + " "
				}
			}
		}
		s += fmt.Sprintf("dev %s weight %d", devName(int32(nh.Ifindex), names), int(nh.Hops)+1)
		hops = append(hops, s)
		b = b[min((l+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1), len(b)):]
	}
	return hops
}

var neighStates = []struct {
	bit  int
	name string
}{
	{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"},
	{netlink.NUD_STALE, "STALE"}, {netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"},
	{netlink.NUD_FAILED, "FAILED"}, {netlink.NUD_NOARP, "NOARP"}, {netlink.NUD_PERMANENT, "PERMANENT"},
}

// parseNeigh reads an RTM_NEWNEIGH/RTM_DELNEIGH itself: the netlink
// library's NeighDeserialize indexes attribute values without checking
// their length, and for a 16-byte link-layer address looks the interface
// up with a netlink request in the caller's own namespace.
func parseNeigh(r *record, payload []byte, names func(int32) string) error {
	if len(payload) < unix.SizeofNdMsg {
		return short("neigh", len(payload))
	}
	payload = bytes.Clone(payload) // the Neigh keeps slices of it
	n := &netlink.Neigh{
		Family:    int(payload[0]),
		LinkIndex: int(int32(native.Uint32(payload[4:8]))),
		State:     int(native.Uint16(payload[8:10])),
		Flags:     int(payload[10]),
		Type:      int(payload[11]),
	}
	as, err := attrs(payload[unix.SizeofNdMsg:])
	if err != nil {
		return err
	}
	for _, at := range as {
		v, has32 := at.Uint32()
		switch at.Type {
		case unix.NDA_DST:
			n.IP = net.IP(at.Value)
		case unix.NDA_LLADDR:
			if len(at.Value) == 4 { // an IPv4 tunnel's (NHRP)
				n.LLIPAddr = net.IP(at.Value)
			} else {
				n.HardwareAddr = net.HardwareAddr(at.Value)
			}
		case unix.NDA_VLAN:
			if len(at.Value) >= 2 {
				n.Vlan = int(native.Uint16(at.Value))
			}
		case unix.NDA_VNI:
			if has32 {
				n.VNI = int(v)
			}
		case unix.NDA_MASTER:
			if has32 {
				n.MasterIndex = int(v)
			}
		case netlink.NDA_FLAGS_EXT:
			if has32 {
				n.FlagsExt = int(v)
			}
		}
	}
	r.obj = n
	r.index = int32(n.LinkIndex)
	r.dev = devName(r.index, names)
	fam := familyName(uint8(n.Family))
	var b strings.Builder
	var who string
	if n.IP != nil {
		who = ipString(n.IP)
	} else if n.HardwareAddr != nil {
		who = n.HardwareAddr.String()
	}
	b.WriteString(who + " dev " + r.dev)
	if n.Family != unix.AF_BRIDGE && len(n.HardwareAddr) > 0 {
		b.WriteString(" lladdr " + net.HardwareAddr(n.HardwareAddr).String())
	}
	if n.Vlan != 0 {
		fmt.Fprintf(&b, " vlan %d", n.Vlan)
	}
	if n.Flags&netlink.NTF_ROUTER != 0 {
		b.WriteString(" router")
	}
	if n.Flags&netlink.NTF_PROXY != 0 {
		b.WriteString(" proxy")
	}
	if n.State == netlink.NUD_NONE {
		b.WriteString(" NONE")
	}
	for _, s := range neighStates {
		if n.State&s.bit != 0 {
			b.WriteString(" " + s.name)
		}
	}
	r.text = b.String()
	r.key = fmt.Sprintf("neigh %s %d %s", fam, n.LinkIndex, who)
	if n.Vlan != 0 {
		r.key += fmt.Sprintf(" vlan %d", n.Vlan)
	}
	// A neighbour dump (AF_UNSPEC) lists ARP and NDP entries only.
	r.stateless = n.Family == unix.AF_BRIDGE || n.Flags&netlink.NTF_PROXY != 0
	return nil
}

// fib_rule_hdr (linux/fib_rules.h)
const sizeofFibRuleHdr = 12

func parseRule(r *record, payload []byte) error {
	if len(payload) < sizeofFibRuleHdr {
		return short("rule", len(payload))
	}
	family, dstLen, srcLen, tos := payload[0], payload[1], payload[2], payload[3]
	table := uint32(payload[4])
	action := payload[7]
	flags := u32(payload[8:12])
	as, err := attrs(payload[sizeofFibRuleHdr:])
	if err != nil {
		return err
	}
	var src, dst, iif, oif string
	var prio, fwmark, fwmask, gotoTarget uint32
	var hasMark, hasMask bool
	for _, at := range as {
		switch at.Type {
		case unix.FRA_SRC:
			src = ipString(at.Value)
		case unix.FRA_DST:
			dst = ipString(at.Value)
		case unix.FRA_IIFNAME:
			iif = strings.TrimRight(string(at.Value), "\x00")
		case unix.FRA_OIFNAME:
			oif = strings.TrimRight(string(at.Value), "\x00")
		case unix.FRA_PRIORITY:
			prio = u32(at.Value)
		case unix.FRA_FWMARK:
			fwmark, hasMark = u32(at.Value), true
		case unix.FRA_FWMASK:
			fwmask, hasMask = u32(at.Value), true
		case unix.FRA_TABLE:
			table = u32(at.Value)
		case unix.FRA_GOTO:
			gotoTarget = u32(at.Value)
		}
	}
	var b strings.Builder
	// ip prints IPv4 and IPv6 rules alike; the family tells them apart.
	fmt.Fprintf(&b, "%s %d:", familyName(family), prio)
	if flags&0x2 != 0 { // FIB_RULE_INVERT
		b.WriteString(" not")
	}
	if src != "" {
		fmt.Fprintf(&b, " from %s/%d", src, srcLen)
	} else {
		b.WriteString(" from all")
	}
	if dst != "" {
		fmt.Fprintf(&b, " to %s/%d", dst, dstLen)
	}
	if tos != 0 {
		fmt.Fprintf(&b, " tos %#x", tos)
	}
	if hasMark && (fwmark != 0 || hasMask && fwmask != 0) {
		fmt.Fprintf(&b, " fwmark %#x", fwmark)
		if hasMask && fwmask != 0xffffffff {
			fmt.Fprintf(&b, "/%#x", fwmask)
		}
	}
	if iif != "" {
		b.WriteString(" iif " + iif)
	}
	if oif != "" {
		b.WriteString(" oif " + oif)
	}
	switch action {
	case unix.FR_ACT_TO_TBL:
		b.WriteString(" lookup " + tableName(table))
	case unix.FR_ACT_GOTO:
		fmt.Fprintf(&b, " goto %d", gotoTarget)
	case unix.FR_ACT_NOP:
		b.WriteString(" nop")
	case unix.FR_ACT_BLACKHOLE:
		b.WriteString(" blackhole")
	case unix.FR_ACT_UNREACHABLE:
		b.WriteString(" unreachable")
	case unix.FR_ACT_PROHIBIT:
		b.WriteString(" prohibit")
	}
	r.text = b.String()
	r.key = "rule " + r.text
	return nil
}

func parseNSID(r *record, payload []byte) error {
	if len(payload) < 4 { // rtgenmsg, aligned
		return short("nsid", len(payload))
	}
	as, err := attrs(payload[4:])
	if err != nil {
		return err
	}
	nsid := int32(-1)
	for _, at := range as {
		if at.Type == unix.NETNSA_NSID {
			nsid = int32(u32(at.Value))
		}
	}
	r.text = fmt.Sprintf("nsid %d", nsid)
	r.key = r.text
	return nil
}
