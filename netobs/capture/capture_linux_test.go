package capture_test

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest/nsopen"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/capture"
)

// The main goroutine stays on the main thread, which the runtime cannot
// discard, as nsjoin asks of every program using it.
func init() { runtime.LockOSThread() }

// pair makes two namespaces joined by a veth with IPv6 off (no neighbour
// discovery noise) and returns them with the interface names.
func pair(t *testing.T) (nsA, nsB, ifA, ifB string) {
	t.Helper()
	nsA, nsB = nstest.NetNS(t), nstest.NetNS(t)
	for _, ns := range []string{nsA, nsB} {
		nstest.Run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	ifA, ifB = nstest.Veth(t, nsA, "10.91.0.1/24", nsB, "10.91.0.2/24")
	return
}

func ping(t *testing.T, ns, dst string, n int) {
	t.Helper()
	nstest.Run(t, "ip", "netns", "exec", ns, "ping", "-q", "-c", itoa(n), "-i", "0.01", "-W", "1", dst)
}

func itoa(i int) string { return strconv.Itoa(i) }

// collectWhile runs cp while traffic runs, and 50 ms more for the last
// packets to arrive, then stops it; Run must end without an error.
func collectWhile(t *testing.T, cp *capture.Capture, traffic func()) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	col := &collector{}
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx, col) }()
	traffic()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return col
}

// collector keeps copies of what Run hands over.
type collector struct {
	mu    sync.Mutex
	pkts  []capture.Packet
	ended []error
}

func (c *collector) Packet(p *capture.Packet) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := *p
	q.Head = append([]byte(nil), p.Head...)
	q.Data = append([]byte(nil), p.Data...)
	c.pkts = append(c.pkts, q)
	return nil
}
func (c *collector) Flush() error { return nil }
func (c *collector) Ended(ifc *capture.Interface, err error) {
	c.mu.Lock()
	c.ended = append(c.ended, err)
	c.mu.Unlock()
}

func TestCaptureOneInterface(t *testing.T) {
	nsA, nsB, _, ifB := pair(t)
	cp, err := capture.Open([]capture.Target{{NS: nsopen.Open(t, nsB)}}, capture.Config{Interfaces: []string{ifB}, Filter: "icmp", Immediate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	ifc := cp.Interfaces()[0]
	if ifc.Name != ifB+"@"+nsB || ifc.LinkType != capture.LinkEthernet {
		t.Fatalf("interface %+v", ifc)
	}
	col := collectWhile(t, cp, func() {
		ping(t, nsA, "10.91.0.2", 5)
	})
	if len(col.pkts) != 10 {
		t.Fatalf("captured %d packets, want 10 (5 requests, 5 replies)", len(col.pkts))
	}
	st := cp.Stats()[0]
	if st.Captured != 10 || st.Received != 10 || st.Dropped != 0 {
		t.Fatalf("stats %+v, want 10 captured and received, 0 dropped", st)
	}
	for i := 1; i < len(col.pkts); i++ {
		if col.pkts[i].Time < col.pkts[i-1].Time {
			t.Fatalf("packet %d earlier than packet %d", i, i-1)
		}
	}
}

func TestCaptureAnyCookedAndSnaplen(t *testing.T) {
	nsA, nsB, _, _ := pair(t)
	cp, err := capture.Open([]capture.Target{{NS: nsopen.Open(t, nsB)}}, capture.Config{Snaplen: 40, Filter: "icmp and inbound", Immediate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if lt := cp.Interfaces()[0].LinkType; lt != capture.LinkLinuxSLL {
		t.Fatalf("link type %v, want LINUX_SLL", lt)
	}
	col := collectWhile(t, cp, func() {
		ping(t, nsA, "10.91.0.2", 3)
	})
	if len(col.pkts) != 3 {
		t.Fatalf("captured %d inbound ICMP packets, want 3", len(col.pkts))
	}
	for _, p := range col.pkts {
		if p.CaptureLength() != 40 || p.Length != 16+84 || len(p.Head) != 16 || p.Outgoing {
			t.Fatalf("packet caplen %d len %d head %d outgoing %v, want 40/100/16/false", p.CaptureLength(), p.Length, len(p.Head), p.Outgoing)
		}
		if p.Head[14] != 0x08 || p.Head[15] != 0x00 {
			t.Fatalf("cooked protocol %x, want 0800", p.Head[14:16])
		}
	}
}

func TestBadFilterAndInterface(t *testing.T) {
	nsB := nstest.NetNS(t)
	ns := nsopen.Open(t, nsB)
	_, err := capture.Open([]capture.Target{{NS: ns}}, capture.Config{Filter: "tcp prot 80"})
	if !errors.Is(err, capture.ErrFilter) || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("bad filter: %v", err)
	}
	_, err = capture.Open([]capture.Target{{NS: ns}}, capture.Config{Interfaces: []string{"eth9"}})
	if err == nil || !strings.Contains(err.Error(), "no interface eth9 in namespace "+nsB) {
		t.Fatalf("unknown interface: %v", err)
	}
	_, err = capture.Open([]capture.Target{{NS: ns}}, capture.Config{Snaplen: capture.MaxSnaplen + 1})
	if err == nil || !strings.Contains(err.Error(), "snaplen") {
		t.Fatalf("snaplen: %v", err)
	}
}

// Interfaces that appear after the capture started are captured with -i any.
func TestAnyPicksUpNewInterfaces(t *testing.T) {
	nsA, nsB := nstest.NetNS(t), nstest.NetNS(t)
	cp, err := capture.Open([]capture.Target{{NS: nsopen.Open(t, nsB)}}, capture.Config{Filter: "icmp", Immediate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	col := collectWhile(t, cp, func() {
		nstest.Veth(t, nsA, "10.92.0.1/24", nsB, "10.92.0.2/24")
		ping(t, nsA, "10.92.0.2", 2)
	})
	if len(col.pkts) < 4 {
		t.Fatalf("captured %d packets on a veth made after the start, want 4", len(col.pkts))
	}
}

// Several namespaces: one stream in timestamp order; a namespace whose name
// goes away ends its part and the other goes on.
func TestMergeAndNamespaceGone(t *testing.T) {
	nsA, nsB, _, _ := pair(t)
	cp, err := capture.Open([]capture.Target{{NS: nsopen.Open(t, nsA)}, {NS: nsopen.Open(t, nsB)}}, capture.Config{Filter: "icmp"})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var col collector
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx, &col) }()
	ping(t, nsA, "10.91.0.2", 5)
	nstest.Run(t, "ip", "netns", "del", nsB)
	deadline := time.Now().Add(10 * time.Second)
	for {
		col.mu.Lock()
		n := len(col.ended)
		col.mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(col.ended) != 1 || !errors.Is(col.ended[0], capture.ErrNamespaceGone) {
		t.Fatalf("ended parts: %v, want one ErrNamespaceGone", col.ended)
	}
	perIfc := map[string]int{}
	for i, p := range col.pkts {
		perIfc[p.Interface.Name]++
		if i > 0 && p.Time < col.pkts[i-1].Time {
			t.Fatalf("packet %d (%s) earlier than the one before", i, p.Interface.Name)
		}
	}
	if perIfc["any@"+nsA] != 10 || perIfc["any@"+nsB] != 10 {
		t.Fatalf("packets per interface %v, want 10 each", perIfc)
	}
}

// Start and stop many captures, by cancel and by Close during Run: no fd,
// goroutine or thread may be left behind.
func TestStartStopNoLeak(t *testing.T) {
	nsB := nstest.NetNS(t)
	ns := nsopen.Open(t, nsB)
	run := func(i int) {
		cp, err := capture.Open([]capture.Target{{NS: ns}}, capture.Config{BufferSize: capture.MinBufferSize, Snaplen: 1500})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- cp.Run(ctx, &collector{}) }()
		if i%2 == 0 {
			cancel()
		} else {
			cp.Close()
		}
		if err := <-done; err != nil && !errors.Is(err, capture.ErrClosed) {
			t.Fatal(err)
		}
		cancel()
		cp.Close()
	}
	run(0)
	run(1)
	before := nstest.TakeSnapshot(t)
	for i := 0; i < 500; i++ {
		run(i)
	}
	before.CheckLeaks(t, "500 start/stop cycles")
	nstest.CheckThreads(t)
}

// runLoneICMP starts a capture of ICMP on one interface of a fresh veth
// pair (a lone ring, its reader in Go's poller); done gets Run's result.
// The capture is closed when the test ends.
func runLoneICMP(t *testing.T) (nsA, nsB, ifB string, cp *capture.Capture, col *collector, done chan error) {
	nsA, nsB, _, ifB = pair(t)
	cp, err := capture.Open([]capture.Target{{NS: nsopen.Open(t, nsB)}}, capture.Config{Interfaces: []string{ifB}, Filter: "icmp"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Close() })
	col = &collector{}
	done = make(chan error, 1)
	go func() { done <- cp.Run(context.Background(), col) }()
	return nsA, nsB, ifB, cp, col, done
}

// TestInterfaceRemovedEndsPart: deleting the captured interface reaches a
// lone ring's reader as a socket error (it waits in Go's poller), which
// ends the part with ErrInterfaceGone and keeps what was captured before.
func TestInterfaceRemovedEndsPart(t *testing.T) {
	nsA, nsB, ifB, cp, col, done := runLoneICMP(t)
	ping(t, nsA, "10.91.0.2", 3)
	nstest.Run(t, "ip", "-n", nsB, "link", "del", ifB)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.ended) != 1 || !errors.Is(col.ended[0], capture.ErrInterfaceGone) {
		t.Fatalf("ended: %v, want one ErrInterfaceGone", col.ended)
	}
	if len(col.pkts) < 6 {
		t.Fatalf("%d packets kept, want the 6 of 3 pings", len(col.pkts))
	}
	if st := cp.Stats()[0]; st.Captured != uint64(len(col.pkts)) {
		t.Fatalf("stats say %d captured, handler got %d", st.Captured, len(col.pkts))
	}
}

// TestInterfaceDownThenRemoved: the kernel reports ENETDOWN once, when
// the interface goes down; removing it afterwards sends no second error.
// The part must still end with ErrInterfaceGone, not wait forever.
func TestInterfaceDownThenRemoved(t *testing.T) {
	nsA, nsB, ifB, _, col, done := runLoneICMP(t)
	ping(t, nsA, "10.91.0.2", 2)
	nstest.Run(t, "ip", "-n", nsB, "link", "set", ifB, "down")
	time.Sleep(500 * time.Millisecond) // the reader takes the one ENETDOWN while the interface exists
	nstest.Run(t, "ip", "-n", nsB, "link", "del", ifB)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(2 * time.Minute):
		// Not a speed limit: before the fix the capture never ended.
		t.Fatal("the capture did not end after its interface was removed")
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.ended) != 1 || !errors.Is(col.ended[0], capture.ErrInterfaceGone) {
		t.Fatalf("ended: %v, want one ErrInterfaceGone", col.ended)
	}
}

// TestOutgoing: with Outgoing the socket keeps what the interface sends
// (the replies of nsB) and not what it receives (the requests), with and
// without a filter expression.
func TestOutgoing(t *testing.T) {
	nsA, nsB, _, ifB := pair(t)
	for _, filter := range []string{"", "icmp"} {
		if filter != "" && !capture.FiltersSupported {
			continue
		}
		cp, err := capture.Open([]capture.Target{{NS: nsopen.Open(t, nsB)}}, capture.Config{Interfaces: []string{ifB}, Filter: filter, Outgoing: true, Immediate: true})
		if err != nil {
			t.Fatal(err)
		}
		col := collectWhile(t, cp, func() {
			ping(t, nsA, "10.91.0.2", 5)
		})
		cp.Close()
		replies := 0
		for _, p := range col.pkts {
			if !p.Outgoing {
				t.Errorf("filter %q: an incoming packet was kept", filter)
			}
			// IPv4 ICMP echo reply from 10.91.0.2.
			if d := p.Data; len(d) >= 42 && d[12] == 8 && d[13] == 0 && d[23] == 1 && d[34] == 0 && d[29] == 2 {
				replies++
			}
		}
		if replies != 5 {
			t.Errorf("filter %q: %d echo replies among %d packets kept, want 5", filter, replies, len(col.pkts))
		}
	}
}
