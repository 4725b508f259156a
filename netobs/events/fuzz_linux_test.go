package events

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nlwire"
	"golang.org/x/sys/unix"
)

// nlAttr encodes one route attribute, padded to 4 bytes.
func nlAttr(typ uint16, val []byte) []byte {
	b := make([]byte, 4, 4+len(val)+3)
	binary.NativeEndian.PutUint16(b[0:], uint16(4+len(val)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func nlU32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// nlMsg encodes one netlink message: header, fixed part, attributes.
func nlMsg(typ uint16, fixed []byte, attrs ...[]byte) []byte {
	body := append([]byte(nil), fixed...)
	for _, a := range attrs {
		body = append(body, a...)
	}
	b := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(b[0:], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	return append(b, body...)
}

// malformedRule is the datagram that crashed `netobs events` through
// the netlink library's ParseRouteAttr: an RTM_NEWRULE whose last
// attribute has a length of 5 (not a multiple of 4) at the very end of
// the buffer.
func malformedRule() []byte {
	payload := make([]byte, sizeofFibRuleHdr)
	payload[0] = unix.AF_INET
	payload[7] = unix.FR_ACT_TO_TBL
	attr := []byte{5, 0, unix.FRA_PRIORITY, 0, 7} // length 5, one byte of value
	b := nlMsg(unix.RTM_NEWRULE, payload)
	b = append(b, attr...)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	return b
}

// fuzzSeeds returns one well-formed message of every type the watcher
// parses, and the crasher.
func fuzzSeeds() [][]byte {
	ifi := make([]byte, unix.SizeofIfInfomsg)
	ifi[2] = 1 // ARPHRD_ETHER
	binary.NativeEndian.PutUint32(ifi[4:], 2)
	binary.NativeEndian.PutUint32(ifi[8:], unix.IFF_UP|unix.IFF_BROADCAST|unix.IFF_LOWER_UP)
	link := nlMsg(unix.RTM_NEWLINK, ifi,
		nlAttr(unix.IFLA_IFNAME, []byte("veth0\x00")),
		nlAttr(unix.IFLA_MTU, nlU32(1500)),
		nlAttr(unix.IFLA_LINK, nlU32(3)),
		nlAttr(unix.IFLA_OPERSTATE, []byte{6}),
		nlAttr(unix.IFLA_ADDRESS, []byte{2, 0, 0, 0, 0, 1}),
		nlAttr(unix.IFLA_LINK_NETNSID, nlU32(0)),
		nlAttr(unix.IFLA_LINKINFO|unix.NLA_F_NESTED, nlAttr(unix.IFLA_INFO_KIND, []byte("veth\x00"))))
	dellink := nlMsg(unix.RTM_DELLINK, ifi, nlAttr(unix.IFLA_IFNAME, []byte("veth0\x00")), nlAttr(unix.IFLA_NEW_NETNSID, nlU32(4)))
	ifa := []byte{unix.AF_INET, 24, 0, 0, 2, 0, 0, 0}
	addr := nlMsg(unix.RTM_NEWADDR, ifa,
		nlAttr(unix.IFA_ADDRESS, []byte{10, 0, 0, 1}),
		nlAttr(unix.IFA_LOCAL, []byte{10, 0, 0, 1}),
		nlAttr(unix.IFA_BROADCAST, []byte{10, 0, 0, 255}),
		nlAttr(unix.IFA_LABEL, []byte("veth0\x00")),
		nlAttr(unix.IFA_FLAGS, nlU32(unix.IFA_F_NOPREFIXROUTE)))
	rtm := []byte{unix.AF_INET, 24, 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_STATIC, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST, 0, 0, 0, 0}
	nh := make([]byte, unix.SizeofRtNexthop)
	gw := nlAttr(unix.RTA_GATEWAY, []byte{10, 0, 0, 254})
	binary.NativeEndian.PutUint16(nh[0:], uint16(len(nh)+len(gw)))
	binary.NativeEndian.PutUint32(nh[4:], 2)
	route := nlMsg(unix.RTM_NEWROUTE, rtm,
		nlAttr(unix.RTA_DST, []byte{10, 9, 0, 0}),
		nlAttr(unix.RTA_PRIORITY, nlU32(5)),
		nlAttr(unix.RTA_TABLE, nlU32(unix.RT_TABLE_MAIN)),
		nlAttr(unix.RTA_PREF, []byte{0}),
		nlAttr(unix.RTA_MULTIPATH, append(nh, gw...)))
	ndm := make([]byte, unix.SizeofNdMsg)
	ndm[0] = unix.AF_INET
	binary.NativeEndian.PutUint32(ndm[4:], 2)
	binary.NativeEndian.PutUint16(ndm[8:], 0x80) // NUD_PERMANENT
	neigh := nlMsg(unix.RTM_NEWNEIGH, ndm,
		nlAttr(unix.NDA_DST, []byte{10, 0, 0, 3}),
		nlAttr(unix.NDA_LLADDR, []byte{2, 0, 0, 0, 0, 3}),
		nlAttr(unix.NDA_VLAN, []byte{7, 0}))
	frh := make([]byte, sizeofFibRuleHdr)
	frh[0], frh[2], frh[7] = unix.AF_INET, 24, unix.FR_ACT_TO_TBL
	rule := nlMsg(unix.RTM_NEWRULE, frh,
		nlAttr(unix.FRA_SRC, []byte{10, 0, 0, 0}),
		nlAttr(unix.FRA_PRIORITY, nlU32(1000)),
		nlAttr(unix.FRA_TABLE, nlU32(100)),
		nlAttr(unix.FRA_FWMARK, nlU32(0x10)),
		nlAttr(unix.FRA_IIFNAME, []byte("veth0\x00")))
	nsid := nlMsg(unix.RTM_NEWNSID, make([]byte, 4), nlAttr(unix.NETNSA_NSID, nlU32(7)))
	all := append(append(append([]byte(nil), link...), addr...), route...)
	return [][]byte{link, dellink, addr, route, neigh, rule, nsid, all, malformedRule()}
}

// FuzzDatagram feeds arbitrary bytes, as one netlink datagram from the
// kernel, through the path the watcher's poller takes (handle: parse,
// apply, report) and the path of a dump (parse, diff against the state),
// then prints every event as text and JSON. Nothing may panic.
func FuzzDatagram(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w := &Watcher{kinds: KindsAll, out: make(chan Event, len(b)/unix.NLMSG_HDRLEN+1), done: make(chan struct{})}
		n := &nsw{state: map[string]obj{}, links: map[int32]linkInfo{}}
		if err := w.handle(n, b, time.Now()); err == errStop {
			t.Fatal("the watcher stopped while not closing")
		}
		var recs []record
		eachMessage(b, func(h *unix.NlMsghdr, payload []byte) error {
			if r, ok, err := parse(h, payload, n.name); ok && err == nil {
				recs = append(recs, r)
			}
			return nil
		})
		w.diff(n, recs, AllKinds)
		close(w.out)
		for ev := range w.out {
			WriteText(io.Discard, ev)
			if _, err := json.Marshal(ev); err != nil {
				t.Fatalf("event does not marshal: %v", err)
			}
		}
	})
}

// TestParseMalformedRule: the datagram that crashed the watcher (through
// the netlink library's ParseRouteAttr) is parsed without a panic, after
// the well-formed rule before it in the same datagram. Its last attribute
// is legal by the kernel's rules (nla_ok), only too short for a priority.
func TestParseMalformedRule(t *testing.T) {
	good := fuzzSeeds()[5] // the rule
	b := append(append([]byte(nil), good...), malformedRule()...)
	w := &Watcher{kinds: KindsAll, out: make(chan Event, 4), done: make(chan struct{})}
	n := &nsw{state: map[string]obj{}, links: map[int32]linkInfo{}}
	if err := w.handle(n, b, time.Now()); err != nil {
		t.Fatalf("handle: %v", err)
	}
	close(w.out)
	var got []string
	for ev := range w.out {
		got = append(got, ev.Text)
	}
	if len(got) != 2 || got[0] != "inet 1000: from 10.0.0.0/24 fwmark 0x10 iif veth0 lookup 100" || got[1] != "inet 0: from all lookup 0" {
		t.Errorf("events %q; want the well-formed rule, then the short one with priority 0", got)
	}
	// An attribute longer than what is left is an error, not a panic.
	bad := malformedRule()
	bad[unix.NLMSG_HDRLEN+sizeofFibRuleHdr] = 9
	h := &unix.NlMsghdr{Type: unix.RTM_NEWRULE}
	if _, ok, err := parse(h, bad[unix.NLMSG_HDRLEN:], n.name); ok || !errors.Is(err, nlwire.ErrMalformed) {
		t.Errorf("rule with an attribute past the end: ok %v, err %v; want ErrMalformed", ok, err)
	}
}

// TestParseEachSeed: every seed parses into the text ip would print.
func TestParseEachSeed(t *testing.T) {
	names := func(i int32) string {
		return map[int32]string{2: "veth0", 3: "veth1"}[i]
	}
	want := []string{
		"2: veth0@if3: <BROADCAST,UP,LOWER_UP> mtu 1500 state UP type veth link/ether 02:00:00:00:00:01 link-netnsid 0",
		"2: veth0: <BROADCAST,UP,LOWER_UP> mtu 0 state UNKNOWN",
		"2: veth0 inet 10.0.0.1/24 brd 10.0.0.255 scope global noprefixroute",
		"10.9.0.0/24 proto static metric 5 pref medium nexthop via 10.0.0.254 dev veth0 weight 1",
		"10.0.0.3 dev veth0 lladdr 02:00:00:00:00:03 vlan 7 PERMANENT",
		"inet 1000: from 10.0.0.0/24 fwmark 0x10 iif veth0 lookup 100",
		"nsid 7",
	}
	for i, seed := range fuzzSeeds()[:len(want)] {
		var texts []string
		err := eachMessage(seed, func(h *unix.NlMsghdr, payload []byte) error {
			r, ok, err := parse(h, payload, names)
			if err != nil || !ok {
				t.Errorf("seed %d: ok %v, err %v", i, ok, err)
				return nil
			}
			texts = append(texts, r.text)
			return nil
		})
		if err != nil || len(texts) != 1 || texts[0] != want[i] {
			t.Errorf("seed %d: %q (%v); want %q", i, texts, err, want[i])
		}
	}
}
