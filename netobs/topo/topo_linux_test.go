package topo

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/nsjoin"
	"github.com/netobs/netobs/tapdev"
)

func init() { runtime.LockOSThread() }

// ipLink is what the test reads of `ip -d -j link`.
type ipLink struct {
	Index      int    `json:"ifindex"`
	Name       string `json:"ifname"`
	LinkIndex  *int   `json:"link_index"`
	Link       string `json:"link"` // the peer's name, when ip can resolve it
	LinkNetnsd *int   `json:"link_netnsid"`
	Master     string `json:"master"`
	Info       struct {
		Kind string `json:"info_kind"`
	} `json:"linkinfo"`
}

// ipView is one namespace as ip sees it.
type ipView struct {
	links []ipLink
	nsids map[int]string // nsid -> ip-netns name
}

func ipRead(t *testing.T, ns string) ipView {
	t.Helper()
	var v ipView
	if err := json.Unmarshal([]byte(nstest.Run(t, "ip", "-n", ns, "-d", "-j", "link")), &v.links); err != nil {
		t.Fatalf("ip -n %s -d -j link: %v", ns, err)
	}
	var ids []struct {
		NSID int    `json:"nsid"`
		Name string `json:"name"`
	}
	out := nstest.Run(t, "ip", "-n", ns, "-j", "netns", "list-id")
	if strings.TrimSpace(out) != "" {
		if err := json.Unmarshal([]byte(out), &ids); err != nil {
			t.Fatalf("ip -n %s -j netns list-id: %v", ns, err)
		}
	}
	v.nsids = map[int]string{}
	for _, id := range ids {
		v.nsids[id.NSID] = id.Name
	}
	return v
}

// ipEdges returns the veth pairs and port-master edges ip shows among the
// namespaces, as "veth nsA/ifA nsB/ifB" (ends sorted) and "port ns/if ns/master".
func ipEdges(t *testing.T, names []string) []string {
	t.Helper()
	views := map[string]ipView{}
	for _, n := range names {
		views[n] = ipRead(t, n)
	}
	nameAt := func(ns string, idx int) string {
		for _, l := range views[ns].links {
			if l.Index == idx {
				return l.Name
			}
		}
		return ""
	}
	set := map[string]bool{}
	for _, n := range names {
		for _, l := range views[n].links {
			if l.Master != "" {
				set["port "+n+"/"+l.Name+" "+n+"/"+l.Master] = true
			}
			if l.Info.Kind != "veth" {
				continue
			}
			peerNS, peerIdx := n, l.Index
			if l.LinkIndex != nil {
				peerIdx = *l.LinkIndex
			}
			if l.LinkNetnsd != nil {
				peerNS = views[n].nsids[*l.LinkNetnsd]
			}
			if _, ok := views[peerNS]; !ok {
				continue // outside the lab
			}
			peer := nameAt(peerNS, peerIdx)
			if l.LinkIndex == nil && l.Link != "" {
				peer = l.Link // same namespace: ip prints the name
			}
			a, b := n+"/"+l.Name, peerNS+"/"+peer
			if b < a {
				a, b = b, a
			}
			set["veth "+a+" "+b] = true
		}
	}
	var out []string
	for e := range set {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// graphEdges renders the graph's veth and port edges like ipEdges, and
// fails on any edge that appears twice.
func graphEdges(t *testing.T, g *Graph) []string {
	t.Helper()
	label := func(id string) string {
		i := g.Interface(id)
		if i == nil {
			t.Fatalf("edge names %s, which is not in the graph", id)
		}
		return g.Namespace(i.NS).Ref() + "/" + i.Name
	}
	var out []string
	seen := map[Edge]bool{}
	for _, e := range g.Edges {
		if seen[e] {
			t.Errorf("edge %v appears twice", e)
		}
		seen[e] = true
		switch e.Kind {
		case Veth:
			a, b := label(e.From), label(e.To)
			if b < a {
				a, b = b, a
			}
			out = append(out, "veth "+a+" "+b)
		case Port:
			out = append(out, "port "+label(e.From)+" "+label(e.To))
		}
	}
	sort.Strings(out)
	return out
}

func open(t *testing.T, names ...string) []*nsjoin.NS {
	t.Helper()
	var nss []*nsjoin.NS
	for _, n := range names {
		ns, err := nsjoin.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		nss = append(nss, ns)
	}
	return nss
}

func ifindex(t *testing.T, ns, dev string) int {
	t.Helper()
	var ls []ipLink
	json.Unmarshal([]byte(nstest.Run(t, "ip", "-n", ns, "-j", "link", "show", dev)), &ls)
	if len(ls) != 1 {
		t.Fatalf("ip -n %s link show %s: %d links", ns, dev, len(ls))
	}
	return ls[0].Index
}

// lab builds: a and br joined by a veth whose ends have different
// indexes, a port of bridge br0; b and c joined by a veth whose ends have
// the same index; a second port of br0 from a veth inside br; a veth
// pair with both ends in c.
func lab(t *testing.T) (a, b, c, br string) {
	a, b, c, br = nstest.NetNS(t), nstest.NetNS(t), nstest.NetNS(t), nstest.NetNS(t)
	nstest.Run(t, "ip", "-n", br, "link", "add", "br0", "type", "bridge")
	nstest.Run(t, "ip", "-n", br, "link", "set", "br0", "up")
	// c and b are fresh: the first device in each gets index 2.
	nstest.Run(t, "ip", "-n", c, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
	// More devices in br first, so that a's end and br's end differ.
	nstest.Run(t, "ip", "-n", br, "link", "add", "in0", "type", "veth", "peer", "name", "in1")
	nstest.Run(t, "ip", "-n", br, "link", "set", "in0", "master", "br0")
	nstest.Run(t, "ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "pa", "netns", br)
	nstest.Run(t, "ip", "-n", br, "link", "set", "pa", "master", "br0", "up")
	nstest.Run(t, "ip", "-n", a, "addr", "add", "10.77.0.1/24", "dev", "eth0")
	nstest.Run(t, "ip", "-n", a, "link", "set", "eth0", "up")
	nstest.Run(t, "ip", "-n", c, "link", "add", "x0", "type", "veth", "peer", "name", "x1")
	if ia, ib := ifindex(t, c, "eth0"), ifindex(t, b, "eth0"); ia != ib {
		t.Fatalf("lab: the b-c veth ends have indexes %d and %d, want equal", ia, ib)
	}
	if ia, ib := ifindex(t, a, "eth0"), ifindex(t, br, "pa"); ia == ib {
		t.Fatalf("lab: the a-br veth ends have the same index %d, want different", ia)
	}
	return a, b, c, br
}

// TestBuildMatchesIP: every veth pair and bridge port that ip shows in
// the lab's namespaces appears in the graph once, and the graph has no
// edge ip does not show.
func TestBuildMatchesIP(t *testing.T) {
	a, b, c, br := lab(t)
	names := []string{a, b, c, br}
	g, err := Build(Options{Namespaces: open(t, names...)})
	if err != nil {
		t.Fatal(err)
	}
	want, got := ipEdges(t, names), graphEdges(t, g)
	if strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Errorf("edges differ from ip's:\nip:\n%s\ntopo:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
	// The lab has 4 veth pairs and 2 ports: make sure ip saw them too.
	if len(want) != 6 {
		t.Errorf("ip shows %d edges, want 6: %v", len(want), want)
	}
	for _, n := range g.Namespaces {
		if n.Err != "" {
			t.Errorf("%s: %s", n.Ref(), n.Err)
		}
		for _, i := range n.Interfaces {
			if i.Unresolved != "" {
				t.Errorf("%s/%s: unresolved %s", n.Ref(), i.Name, i.Unresolved)
			}
		}
	}
	// Attributes, against ip.
	for _, n := range names {
		gn := g.Namespace(NodeID(open(t, n)[0].ID().Inode))
		if gn == nil || gn.Ref() != n {
			t.Fatalf("namespace %s missing or misnamed: %+v", n, gn)
		}
		for _, l := range ipRead(t, n).links {
			i := g.Interface(InterfaceID(gn.Inode, l.Index))
			if i == nil || i.Name != l.Name {
				t.Errorf("%s: ip's %d: %s is %+v in the graph", n, l.Index, l.Name, i)
				continue
			}
			if k := l.Info.Kind; k != "" && k != i.Kind {
				t.Errorf("%s/%s: kind %q, ip says %q", n, l.Name, i.Kind, k)
			}
		}
	}
	ea := g.Interface(InterfaceID(g.Namespaces[0].Inode, 0)) // none
	if ea != nil {
		t.Errorf("index 0 exists: %+v", ea)
	}
	for _, i := range g.Namespace(NodeID(open(t, a)[0].ID().Inode)).Interfaces {
		if i.Name == "eth0" && (strings.Join(i.Addrs, ",") != "10.77.0.1/24" && !strings.HasPrefix(strings.Join(i.Addrs, ","), "10.77.0.1/24,")) {
			t.Errorf("eth0 in %s has addresses %v, want 10.77.0.1/24 first", a, i.Addrs)
		}
	}
}

// TestBuildPeerOutside: a namespace drawn alone names its veth peer in a
// namespace that is not drawn, without an edge to a node that is not there.
func TestBuildPeerOutside(t *testing.T) {
	a, _, _, br := lab(t)
	g, err := Build(Options{Namespaces: open(t, a)})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Edges) != 0 {
		t.Errorf("edges to namespaces not drawn: %v", g.Edges)
	}
	var eth0 *Interface
	for _, i := range g.Namespaces[0].Interfaces {
		if i.Name == "eth0" {
			eth0 = i
		}
	}
	if eth0 == nil || eth0.Unresolved != "pa@"+br {
		t.Fatalf("eth0 = %+v, want unresolved pa@%s", eth0, br)
	}
}

// TestBuildAll: --all finds the lab's namespaces with the same edges.
func TestBuildAll(t *testing.T) {
	a, b, c, br := lab(t)
	if _, err := Build(Options{All: true}); err != nil { // warm up: nsjoin opens its own once
		t.Fatal(err)
	}
	before := nstest.TakeSnapshot(t)
	g, err := Build(Options{All: true})
	if err != nil {
		t.Fatal(err)
	}
	// Every namespace handle and netlink socket closed, no thread left
	// in a foreign namespace.
	before.CheckLeaks(t, "Build --all")
	nstest.CheckThreads(t)
	names := map[string]bool{a: true, b: true, c: true, br: true}
	var sub []string
	for _, e := range graphEdges(t, g) {
		f := strings.Fields(e)
		if names[strings.Split(f[1], "/")[0]] || names[strings.Split(f[2], "/")[0]] {
			sub = append(sub, e)
		}
	}
	want := ipEdges(t, []string{a, b, c, br})
	if strings.Join(want, "\n") != strings.Join(sub, "\n") {
		t.Errorf("--all edges of the lab differ from ip's:\nip:\n%s\ntopo:\n%s", strings.Join(want, "\n"), strings.Join(sub, "\n"))
	}
	hosts := 0
	for _, n := range g.Namespaces {
		if n.Host {
			hosts++
		}
	}
	if hosts != 1 || !g.Namespaces[0].Host {
		t.Errorf("%d host namespaces, first %+v; want exactly one, first", hosts, g.Namespaces[0])
	}
}

// TestBuildTapOwner: a TAP that this process holds has this process as
// owner; a persistent TAP of the same name in another namespace, held by
// no one, has none.
func TestBuildTapOwner(t *testing.T) {
	n1, n2 := nstest.NetNS(t), nstest.NetNS(t)
	nss := open(t, n1, n2)
	dev, err := tapdev.Create(nss[0], tapdev.Config{Kind: tapdev.TAP, Name: "obs0"})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	nstest.Run(t, "ip", "-n", n2, "tuntap", "add", "obs0", "mode", "tap")
	g, err := Build(Options{Namespaces: nss})
	if err != nil {
		t.Fatal(err)
	}
	var owners []Edge
	for _, e := range g.Edges {
		if e.Kind == Owner {
			owners = append(owners, e)
		}
	}
	if len(owners) != 1 {
		t.Fatalf("owner edges %v, want one", owners)
	}
	i := g.Interface(owners[0].To)
	if i == nil || i.Name != "obs0" || i.Kind != "tap" || i.NS != NodeID(nss[0].ID().Inode) {
		t.Errorf("owner edge to %+v, want obs0 (tap) in %s", i, n1)
	}
	if want := fmt.Sprintf("pid:%d", os.Getpid()); owners[0].From != want || len(g.Processes) != 1 || g.Processes[0].PID != os.Getpid() {
		t.Errorf("owner %s, processes %+v; want %s", owners[0].From, g.Processes, want)
	}
	var text bytes.Buffer
	g.WriteText(&text)
	if !strings.Contains(text.String(), fmt.Sprintf("held by %s[%d]", g.Processes[0].Comm, os.Getpid())) {
		t.Errorf("text does not name the holder:\n%s", text.String())
	}
}

// TestBuildHostileNames: interface names with markup and an escape
// sequence come out as text in every format: escaped for the terminal,
// a DOT file Graphviz parses, an SVG that is well-formed XML with no
// element but Graphviz's own.
func TestBuildHostileNames(t *testing.T) {
	nstest.RequireTools(t, "dot")
	n := nstest.NetNS(t)
	names := []string{`<script>`, "\x1b[31mred", `"&amp;\N`, `<img>'`}
	for k, name := range names {
		peer := fmt.Sprintf("p%d", k)
		nstest.Run(t, "ip", "-n", n, "link", "add", name, "type", "veth", "peer", "name", peer)
	}
	g, err := Build(Options{Namespaces: open(t, n)})
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, i := range g.Namespaces[0].Interfaces {
		for _, name := range names {
			if i.Name == name {
				found++
			}
		}
	}
	if found != len(names) {
		t.Fatalf("found %d of the %d names in the graph", found, len(names))
	}
	var text, dot, svg bytes.Buffer
	if err := g.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text.String(), "\x1b") {
		t.Errorf("text output holds a raw ESC:\n%q", text.String())
	}
	if !strings.Contains(text.String(), `\x1b[31mred veth`) || !strings.Contains(text.String(), `p1 veth`) ||
		!strings.Contains(text.String(), `⇄ \x1b[31mred`) || !strings.Contains(text.String(), `<script> veth`) {
		t.Errorf("text does not show the escaped name and its peer:\n%s", text.String())
	}
	if err := g.WriteDOT(&dot); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dot", "-Tplain")
	cmd.Stdin = bytes.NewReader(dot.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dot does not parse the DOT: %v\n%s\n%s", err, out, dot.String())
	}
	if err := g.WriteSVG(context.Background(), &svg); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, svg.Bytes(), names)
}

// checkSVG parses svg as XML and checks that it holds only Graphviz's
// elements and shows each name as text.
func checkSVG(t *testing.T, svg []byte, names []string) {
	t.Helper()
	allowed := map[string]bool{"svg": true, "g": true, "title": true, "text": true, "polygon": true,
		"path": true, "ellipse": true, "polyline": true, "a": true}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	dec.Strict = true
	var texts []string
	inText := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg is not well-formed XML: %v", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			if !allowed[tk.Name.Local] {
				t.Errorf("svg has a <%s> element", tk.Name.Local)
			}
			for _, a := range tk.Attr {
				if strings.HasPrefix(strings.ToLower(a.Name.Local), "on") {
					t.Errorf("svg has an event attribute %s=%q", a.Name.Local, a.Value)
				}
			}
			inText = tk.Name.Local == "text"
		case xml.EndElement:
			inText = false
		case xml.CharData:
			if inText {
				texts = append(texts, string(tk))
			}
		}
	}
	all := strings.Join(texts, "\n")
	for _, name := range names {
		want := strings.ReplaceAll(name, "\x1b", `\x1b`)
		if !strings.Contains(all, want) {
			t.Errorf("svg text does not show %q as text; texts:\n%s", want, all)
		}
	}
}

// ipCounters reads dev's counters in ns with `ip -s -j link`.
func ipCounters(t *testing.T, ns, dev string) Counters {
	t.Helper()
	var ls []struct {
		Stats struct {
			RX struct{ Bytes, Packets, Dropped uint64 } `json:"rx"`
			TX struct{ Bytes, Packets, Dropped uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(nstest.Run(t, "ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev)), &ls); err != nil || len(ls) != 1 {
		t.Fatalf("ip -s -j link show %s: %v (%d links)", dev, err, len(ls))
	}
	s := ls[0].Stats
	return Counters{RxPackets: s.RX.Packets, TxPackets: s.TX.Packets, RxBytes: s.RX.Bytes, TxBytes: s.TX.Bytes, RxDropped: s.RX.Dropped, TxDropped: s.TX.Dropped}
}

// TestBuildCounters: an interface's packet and byte counters in the graph
// lie between what ip -s shows just before and just after Build, after
// pings made them move.
func TestBuildCounters(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ping")
	a, b := nstest.NetNS(t), nstest.NetNS(t)
	va, _ := nstest.Veth(t, a, "10.81.0.1/24", b, "10.81.0.2/24")
	nstest.Run(t, "ip", "netns", "exec", a, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.81.0.2")
	before := ipCounters(t, a, va)
	g, err := Build(Options{Namespaces: open(t, a)})
	if err != nil {
		t.Fatal(err)
	}
	after := ipCounters(t, a, va)
	i := g.Interface(InterfaceID(g.Namespaces[0].Inode, ifindex(t, a, va)))
	if i == nil || i.Counters == nil {
		t.Fatalf("%s in %s: no counters: %+v", va, a, i)
	}
	c := *i.Counters
	if c.TxPackets < 3 || c.RxPackets < 3 {
		t.Errorf("%s after 3 pings: %+v", va, c)
	}
	for _, f := range []struct {
		name        string
		lo, got, hi uint64
	}{
		{"rx_packets", before.RxPackets, c.RxPackets, after.RxPackets},
		{"tx_packets", before.TxPackets, c.TxPackets, after.TxPackets},
		{"rx_bytes", before.RxBytes, c.RxBytes, after.RxBytes},
		{"tx_bytes", before.TxBytes, c.TxBytes, after.TxBytes},
		{"rx_dropped", before.RxDropped, c.RxDropped, after.RxDropped},
		{"tx_dropped", before.TxDropped, c.TxDropped, after.TxDropped},
	} {
		if f.got < f.lo || f.got > f.hi {
			t.Errorf("%s %s: %d, ip says %d before and %d after", va, f.name, f.got, f.lo, f.hi)
		}
	}
}

// TestOpenNamespace: a namespace opens by its node ID; an ID no namespace
// has is fs.ErrNotExist.
func TestOpenNamespace(t *testing.T) {
	nstest.RequireRoot(t)
	a := nstest.NetNS(t)
	want := open(t, a)[0].ID()
	ns, err := OpenNamespace(NodeID(want.Inode))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if got := ns.ID(); got != want {
		t.Errorf("OpenNamespace(%s): %v, want %v", NodeID(want.Inode), got, want)
	}
	for _, id := range []string{"net:[1]", "", "net:[x]", a} {
		if ns, err := OpenNamespace(id); !errors.Is(err, fs.ErrNotExist) {
			if ns != nil {
				ns.Close()
			}
			t.Errorf("OpenNamespace(%q): %v, want fs.ErrNotExist", id, err)
		}
	}
}
