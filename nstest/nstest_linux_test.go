// The tests are an external package on purpose: they use nstest only as
// another module would, through its exported API.
package nstest_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	inst "github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/nsjoin"
	"github.com/netobs/netobs/nstest"
)

func init() {
	// nsjoin's advice: keep the main goroutine on the main thread, so Do
	// never runs on the one thread the runtime cannot discard.
	runtime.LockOSThread()
}

// TestMain fails the run if any thread of the test process is left in a
// foreign namespace once every test has ended.
func TestMain(m *testing.M) {
	code := m.Run()
	var bad []string
	for i := 0; i < 200; i++ {
		if bad = inst.ForeignThreads(); len(bad) == 0 {
			break
		}
		inst.Sleep()
	}
	if len(bad) > 0 {
		fmt.Fprintf(os.Stderr, "%d threads in foreign namespaces after the tests, first: %s\n", len(bad), bad[0])
		code = 1
	}
	os.Exit(code)
}

// echo serves one connection at a time, writing back what it reads.
func echo(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := fmt.Fprintln(c, msg); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != msg+"\n" {
		t.Fatalf("echo of %q: got %q, %v", msg, got, err)
	}
}

// TestVethTCP: two fresh namespaces joined by a veth; a TCP connection from
// one reaches a listener in the other over the veth, with the addresses
// the test gave, and the server sees the client's address.
func TestVethTCP(t *testing.T) {
	t.Parallel()
	client, server := nstest.NewNetNS(t), nstest.NewNetNS(t)
	if nsjoin.Same(client, server) {
		t.Fatal("two NewNetNS calls returned the same namespace")
	}
	lc, ls := nstest.Veth(t, client, server, "10.201.0.1/24", "10.201.0.2/24")
	if lc.Addr() != netip.MustParseAddr("10.201.0.1") || ls.Index == 0 || len(ls.MAC) != 6 {
		t.Fatalf("veth ends: %+v %+v", lc, ls)
	}
	ln := nstest.Listen(t, server, "tcp", "10.201.0.2:7000")
	accepted := make(chan net.Addr, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c.RemoteAddr()
		io.Copy(c, c)
		c.Close()
	}()
	c := nstest.Dial(t, client, "tcp", "10.201.0.2:7000")
	if _, ok := c.(*net.TCPConn); !ok {
		t.Fatalf("Dial returned %T, want *net.TCPConn", c)
	}
	roundTrip(t, c, "over the veth")
	if a := <-accepted; a == nil || !strings.HasPrefix(a.String(), "10.201.0.1:") {
		t.Fatalf("server saw the client as %v, want 10.201.0.1:PORT", a)
	}
	// The namespace really is another one: the host has no such address.
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if strings.HasPrefix(a.String(), "10.201.0.") {
			t.Fatalf("the host has the address %s", a)
		}
	}
	inst.CheckThreads(t)
}

// TestNamedAgreesWithIP: a named namespace and a veth made by nstest are
// what `ip` shows: the name in `ip netns list`, the ends with their
// addresses, up, and the loopback up.
func TestNamedAgreesWithIP(t *testing.T) {
	t.Parallel()
	nstest.RequireTools(t, "ip")
	a, b := nstest.NewNamedNetNS(t), nstest.NewNamedNetNS(t)
	if !strings.HasPrefix(a.Ref(), nstest.Prefix()) {
		t.Fatalf("name %q lacks the run prefix %q", a.Ref(), nstest.Prefix())
	}
	la, _ := nstest.VethEnds(t,
		nstest.End{NS: a, Addrs: []string{"10.202.0.1/24", "fd00:202::1/64"}, MTU: 1400},
		nstest.End{NS: b, Addrs: []string{"10.202.0.2/24"}})
	list := inst.Run(t, "ip", "netns", "list")
	if !strings.Contains(list, a.Ref()) || !strings.Contains(list, b.Ref()) {
		t.Fatalf("ip netns list lacks %s or %s:\n%s", a.Ref(), b.Ref(), list)
	}
	show := inst.Run(t, "ip", "-n", a.Ref(), "addr", "show", "dev", la.Name)
	for _, want := range []string{"10.202.0.1/24", "fd00:202::1/64", "mtu 1400", ",UP", "state UP"} {
		if !strings.Contains(show, want) {
			t.Errorf("ip -n %s addr show %s lacks %q:\n%s", a.Ref(), la.Name, want, show)
		}
	}
	if lo := inst.Run(t, "ip", "-n", a.Ref(), "link", "show", "lo"); !strings.Contains(lo, ",UP") {
		t.Errorf("lo is not up in %s:\n%s", a.Ref(), lo)
	}
	// The IPv6 address skipped DAD, so it can be bound at once.
	nstest.Listen(t, a, "tcp6", "[fd00:202::1]:0")
}

// TestNamedCleanup: the name of a named namespace goes when the test
// ends, even if the test fails, and an unnamed one never has a name.
func TestNamedCleanup(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		ns := nstest.NewNamedNetNS(t)
		name = ns.Ref()
		if _, err := os.Stat("/run/netns/" + name); err != nil {
			t.Fatal(err)
		}
		nstest.NewNetNS(t)
	})
	if _, err := os.Stat("/run/netns/" + name); !os.IsNotExist(err) {
		t.Fatalf("/run/netns/%s is still there after the test: %v", name, err)
	}
}

// TestHostVeth: a veth end put in the host is deleted when the test ends.
func TestHostVeth(t *testing.T) {
	var hostEnd string
	t.Run("inner", func(t *testing.T) {
		ns := nstest.NewNetNS(t)
		lh, _ := nstest.Veth(t, nstest.HostNS(t), ns, "", "10.203.0.2/24")
		hostEnd = lh.Name
		if _, err := net.InterfaceByName(hostEnd); err != nil {
			t.Fatalf("host end %s not in the host: %v", hostEnd, err)
		}
	})
	if hostEnd == "" {
		t.FailNow()
	}
	if _, err := netlink.LinkByName(hostEnd); err == nil {
		t.Fatalf("host end %s is still in the host after the test", hostEnd)
	}
}

// TestBridge: three namespaces joined by a bridge in a fourth reach one
// another through it, and a route through a gateway on the bridge works.
func TestBridge(t *testing.T) {
	t.Parallel()
	hub := nstest.NewNetNS(t)
	var members []*nsjoin.NS
	var ends []nstest.End
	for i := 1; i <= 3; i++ {
		ns := nstest.NewNetNS(t)
		members = append(members, ns)
		ends = append(ends, nstest.End{NS: ns, Addrs: []string{fmt.Sprintf("10.204.0.%d/24", 10+i)}})
	}
	br, links := nstest.Bridge(t, hub, "10.204.0.1/24", ends...)
	if len(links) != 3 || br.Addr() != netip.MustParseAddr("10.204.0.1") {
		t.Fatalf("bridge %+v, members %+v", br, links)
	}
	ln := nstest.Listen(t, members[2], "tcp", "10.204.0.13:7001")
	go echo(ln)
	roundTrip(t, nstest.Dial(t, members[0], "tcp", "10.204.0.13:7001"), "across the bridge")

	// A service on another network in the hub, reached by a route via the
	// bridge's address.
	nstest.AddAddr(t, br, "10.205.0.1/24")
	nstest.AddRoute(t, members[1], "10.205.0.0/24", "10.204.0.1")
	hubLn := nstest.Listen(t, hub, "tcp", "10.205.0.1:7002")
	go echo(hubLn)
	roundTrip(t, nstest.Dial(t, members[1], "tcp", "10.205.0.1:7002"), "via the route")
	nstest.AddRoute(t, members[0], "default", "10.204.0.1")
	roundTrip(t, nstest.Dial(t, members[0], "tcp", "10.205.0.1:7002"), "via the default route")
}

// TestCapture: the recorder sees the datagram the test sent, with the
// bytes sent, and the filter keeps out what it should.
func TestCapture(t *testing.T) {
	t.Parallel()
	a, b := nstest.NewNetNS(t), nstest.NewNetNS(t)
	la, lb := nstest.Veth(t, a, b, "10.206.0.1/24", "10.206.0.2/24")
	rec := nstest.Capture(t, b, lb.Name, "udp dst port 9999")
	sink := nstest.ListenPacket(t, b, "udp", "10.206.0.2:9999")
	c := nstest.Dial(t, a, "udp", "10.206.0.2:9999")
	other := nstest.Dial(t, a, "udp", "10.206.0.2:9998")
	payload := []byte("nstest capture payload")
	other.Write([]byte("filtered out"))
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, _, err := sink.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], payload) {
		t.Fatalf("sink read %q, %v", buf[:n], err)
	}
	p := rec.WaitFor(t, "the datagram to 10.206.0.2:9999", func(p nstest.Packet) bool {
		return p.Dst == "10.206.0.2" && p.DstPort == 9999
	})
	if !bytes.HasSuffix(p.Data, payload) || p.Src != la.Addr().String() || p.Outgoing || p.Proto != "udp" {
		t.Fatalf("captured %+v", p)
	}
	// The Ethernet source is the sender's veth end.
	if !bytes.Equal(p.Data[6:12], la.MAC) {
		t.Fatalf("source MAC %x, want %s", p.Data[6:12], la.MAC)
	}
	for _, q := range rec.Stop() {
		if q.DstPort != 9999 {
			t.Fatalf("the filter let through %s", q.Summary)
		}
	}
}

// TestEvents: the recorder sees a link appear and an address added after
// it returned.
func TestEvents(t *testing.T) {
	t.Parallel()
	a, b := nstest.NewNetNS(t), nstest.NewNetNS(t)
	rec := nstest.Events(t, a)
	la, _ := nstest.Veth(t, a, b, "", "")
	rec.WaitFor(t, "the veth's link event", func(ev events.Event) bool {
		return ev.Kind == "link" && ev.Action == events.Added && ev.Dev == la.Name
	})
	nstest.AddAddr(t, la, "10.207.0.1/24")
	ev := rec.WaitFor(t, "the address event", func(ev events.Event) bool {
		return ev.Kind == "addr" && ev.Action == events.Added && strings.Contains(ev.Text, "10.207.0.1/24")
	})
	if ev.Index != la.Index || ev.NS.Inode != a.ID().Inode {
		t.Fatalf("address event %+v, want interface %d in %s", ev, la.Index, a)
	}
}

// TestParallel runs many tests at once, each with its own namespaces and
// traffic, under the race detector in `make test`.
func TestParallel(t *testing.T) {
	for i := 0; i < 16; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			a, b := nstest.NewNetNS(t), nstest.NewNetNS(t)
			// The same addresses in every pair: the namespaces are apart.
			nstest.Veth(t, a, b, "10.208.0.1/24", "10.208.0.2/24")
			ln := nstest.Listen(t, b, "tcp", "10.208.0.2:7003")
			go echo(ln)
			roundTrip(t, nstest.Dial(t, a, "tcp", "10.208.0.2:7003"), fmt.Sprint("pair ", i))
		})
	}
	t.Cleanup(func() { inst.CheckThreads(t) })
}

// runNetnsMounts lists the mounts under /run/netns whose name has the run
// prefix.
func runNetnsMounts(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], "/run/netns/"+nstest.Prefix()) {
			out = append(out, f[4])
		}
	}
	return out
}

// TestNoLeak creates 200 namespaces (every other one named), joins each
// pair with a veth, and checks that the end of the test leaves no
// descriptor, goroutine, name or mount under /run/netns, and no thread in
// a foreign namespace.
func TestNoLeak(t *testing.T) {
	nstest.RequireRoot(t)
	// Warm up: nsjoin opens its own namespaces once per process.
	t.Run("warmup", func(t *testing.T) {
		nstest.Veth(t, nstest.NewNetNS(t), nstest.NewNamedNetNS(t), "", "")
	})
	snap := inst.TakeSnapshot(t)
	mounts := runNetnsMounts(t)
	const n = 200
	var names []string
	var servers sync.WaitGroup
	t.Run("create", func(t *testing.T) {
		var prev *nsjoin.NS
		for i := 0; i < n; i++ {
			var ns *nsjoin.NS
			if i%2 == 0 {
				ns = nstest.NewNetNS(t)
			} else {
				ns = nstest.NewNamedNetNS(t)
				names = append(names, ns.Ref())
				nstest.Veth(t, prev, ns, "10.209.0.1/30", "10.209.0.2/30")
				if i%20 == 1 {
					// Recorders and sockets too: their goroutines and
					// descriptors must go with the test.
					rec := nstest.Capture(t, ns, "any", "tcp port 7005")
					nstest.Events(t, prev)
					ln := nstest.Listen(t, ns, "tcp", "10.209.0.2:7005")
					servers.Add(1)
					go func() {
						defer servers.Done()
						if c, err := ln.Accept(); err == nil {
							// Until cleanup closes the client. Not io.Copy: its
							// splice keeps a pipe pair in Go's pool, which
							// would count as descriptors left open.
							io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, make([]byte, 512))
							c.Close()
						}
					}()
					roundTrip(t, nstest.Dial(t, prev, "tcp", "10.209.0.2:7005"), "leak check")
					rec.WaitFor(t, "the echo's packets", func(p nstest.Packet) bool { return p.SrcPort == 7005 })
				}
			}
			prev = ns
		}
		if got := len(runNetnsMounts(t)) - len(mounts); got != n/2 {
			t.Fatalf("%d names mounted under /run/netns, want %d", got, n/2)
		}
	})
	servers.Wait() // the test's own echo servers, not nstest's
	snap.CheckLeaks(t, fmt.Sprintf("%d namespaces", n))
	if got := runNetnsMounts(t); len(got) > len(mounts) {
		t.Errorf("%d mounts under /run/netns left behind, first %s", len(got)-len(mounts), got[len(got)-1])
	}
	for _, name := range names {
		if _, err := os.Lstat("/run/netns/" + name); err == nil {
			t.Fatalf("/run/netns/%s left behind", name)
		}
	}
	inst.CheckThreads(t)
}

// fakeTB records what a helper did to the test instead of doing it; it
// runs the helper on its own goroutine so Fatal and Skip can end it.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	fatal    string
	skipped  string
	cleanups []func()
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Errorf(format string, args ...any) { f.Fatalf(format, args...) }
func (f *fakeTB) Skip(args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

func runFake(fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	return f
}

// TestUnavailable: a missing tool skips the test, except under CI=true,
// where it fails it with the fix in the message.
func TestUnavailable(t *testing.T) {
	missing := "nstest-no-such-tool"
	t.Setenv("CI", "")
	f := runFake(func(tb testing.TB) { nstest.RequireTools(tb, missing) })
	if f.fatal != "" || !strings.Contains(f.skipped, missing) {
		t.Fatalf("without CI: fatal %q, skipped %q; want a skip naming %s", f.fatal, f.skipped, missing)
	}
	t.Setenv("CI", "true")
	f = runFake(func(tb testing.TB) { nstest.RequireTools(tb, missing) })
	if f.skipped != "" || !strings.Contains(f.fatal, missing) || !strings.Contains(f.fatal, "CI=true") {
		t.Fatalf("under CI: fatal %q, skipped %q; want a failure naming %s", f.fatal, f.skipped, missing)
	}
	f = runFake(func(tb testing.TB) { nstest.RequireTools(tb, "sh") })
	if f.fatal != "" || f.skipped != "" {
		t.Fatalf("with sh present: fatal %q, skipped %q", f.fatal, f.skipped)
	}
}

// TestBadInput: a bad address fails the test with a message that says
// what was wrong, and nothing is left behind.
func TestBadInput(t *testing.T) {
	nstest.RequireRoot(t)
	before := inst.FDCount(t)
	f := runFake(func(tb testing.TB) {
		nstest.Veth(tb, nstest.NewNetNS(tb), nstest.NewNetNS(tb), "10.210.0.1", "")
	})
	if !strings.Contains(f.fatal, `"10.210.0.1"`) || !strings.Contains(f.fatal, "prefix length") {
		t.Fatalf("fatal %q, want one about the missing prefix length", f.fatal)
	}
	f = runFake(func(tb testing.TB) {
		ns := nstest.NewNetNS(tb)
		nstest.VethEnds(tb, nstest.End{NS: ns, Name: "lo"}, nstest.End{NS: ns})
	})
	if !strings.Contains(f.fatal, "add veth lo") {
		t.Fatalf("fatal %q, want one about the name taken by lo", f.fatal)
	}
	if got := inst.FDCount(t); got > before {
		t.Fatalf("%d descriptors open after the failures, %d before", got, before)
	}
}

// TestWaitForEnded: WaitFor fails, rather than waits, once recording has
// stopped without a match.
func TestWaitForEnded(t *testing.T) {
	t.Parallel()
	ns := nstest.NewNetNS(t)
	rec := nstest.Events(t, ns)
	rec.Stop()
	f := runFake(func(tb testing.TB) {
		rec.WaitFor(tb, "an event that never comes", func(events.Event) bool { return false })
	})
	if !strings.Contains(f.fatal, "an event that never comes") || !strings.Contains(f.fatal, "recording ended") {
		t.Fatalf("fatal %q", f.fatal)
	}
}

// TestWithoutIP: nstest needs no ip binary: with an empty PATH the
// helpers still work.
func TestWithoutIP(t *testing.T) {
	t.Setenv("PATH", "")
	if _, err := exec.LookPath("ip"); err == nil {
		t.Fatal("ip still found")
	}
	a, b := nstest.NewNetNS(t), nstest.NewNamedNetNS(t)
	_, lb := nstest.Veth(t, a, b, "10.211.0.1/24", "10.211.0.2/24")
	go echo(nstest.Listen(t, b, "tcp", lb.Addr().String()+":7004"))
	roundTrip(t, nstest.Dial(t, a, "tcp", "10.211.0.2:7004"), "no ip needed")
}
