package capture_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	ctx, cancel := context.WithCancel(context.Background())
	var col collector
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx, &col) }()
	ping(t, nsA, "10.91.0.2", 5)
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
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
	ctx, cancel := context.WithCancel(context.Background())
	var col collector
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx, &col) }()
	ping(t, nsA, "10.91.0.2", 3)
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
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
	ctx, cancel := context.WithCancel(context.Background())
	var col collector
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx, &col) }()
	nstest.Veth(t, nsA, "10.92.0.1/24", nsB, "10.92.0.2/24")
	ping(t, nsA, "10.92.0.2", 2)
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
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

func TestPcapngWriterStats(t *testing.T) {
	ifcs := []*capture.Interface{
		{ID: 0, Name: "eth0@a", Description: "network namespace net:[1]", LinkType: capture.LinkEthernet, Snaplen: 100, Filter: "icmp"},
		{ID: 1, Name: "any@b", LinkType: capture.LinkLinuxSLL, Snaplen: 100},
	}
	var buf bytes.Buffer
	w, err := capture.NewPcapngWriter(&buf, ifcs, "test")
	if err != nil {
		t.Fatal(err)
	}
	frame := bytes.Repeat([]byte{0xab}, 61)
	w.Packet(&capture.Packet{Interface: ifcs[0], Time: 1_700_000_000_123456789, Length: 61, Data: frame})
	w.Packet(&capture.Packet{Interface: ifcs[1], Time: 1_700_000_001_000000000, Length: 90, Head: make([]byte, 16), Data: frame[:20]})
	if err := w.WriteStats([]capture.Stats{{Received: 5, Dropped: 3, Captured: 2}, {Received: 1 << 33, Captured: 1}}); err != nil {
		t.Fatal(err)
	}
	f := t.TempDir() + "/x.pcapng"
	if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	pkts, ifs, err := nstest.ReadPcap(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != 2 || !bytes.Equal(pkts[0].Data, frame) || pkts[0].Time != 1_700_000_000_123456789 || pkts[0].Interface != 0 {
		t.Fatalf("first packet: %+v", pkts)
	}
	if p := pkts[1]; len(p.Data) != 36 || p.Length != 90 || p.Interface != 1 {
		t.Fatalf("second packet: %+v", p)
	}
	if len(ifs) != 2 || ifs[0].Name != "eth0@a" || ifs[0].Description != "network namespace net:[1]" || ifs[0].Filter != "icmp" || ifs[1].LinkType != 113 {
		t.Fatalf("interfaces: %+v", ifs)
	}
	if s := ifs[0]; s.IfRecv != 5 || s.OSDrop != 3 || s.IfDrop != 3 || s.UsrDeliv != 2 {
		t.Fatalf("interface 0 statistics %+v", s)
	}
	if s := ifs[1]; s.IfRecv != 1<<33 {
		t.Fatalf("interface 1 statistics %+v, want 2^33 received (64 bits)", s)
	}
	if _, err := exec.LookPath("tshark"); err == nil {
		out, err := exec.Command("tshark", "-r", f, "-T", "fields", "-e", "frame.interface_name").Output()
		if err != nil || strings.Fields(string(out))[1] != "any@b" {
			t.Fatalf("tshark: %v %q", err, out)
		}
	}
}

// fullDisk is a file that takes limit bytes, then fails as a full disk
// does: a short write, then ENOSPC.
type fullDisk struct {
	*os.File
	limit int
}

func (d *fullDisk) Write(b []byte) (int, error) {
	if len(b) <= d.limit {
		d.limit -= len(b)
		return d.File.Write(b)
	}
	n, _ := d.File.Write(b[:d.limit])
	d.limit = 0
	return n, syscall.ENOSPC
}

// TestWriterDiskFull: when the disk fills, the file is cut back to the
// last whole packet, so it is readable to its end, and Written says how
// many packets it holds; later packets get the error.
func TestWriterDiskFull(t *testing.T) {
	ifc := &capture.Interface{ID: 0, Name: "eth0@a", LinkType: capture.LinkEthernet, Snaplen: 2000}
	for _, format := range []string{"pcap", "pcapng"} {
		for _, limit := range []int{10, 300, 5000, 100000, 300000, 500001} {
			path := t.TempDir() + "/x." + format
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			d := &fullDisk{File: f, limit: limit}
			var h interface {
				capture.Handler
				Written() uint64
			}
			if format == "pcap" {
				h, err = capture.NewPcapWriter(d, ifc)
			} else {
				h, err = capture.NewPcapngWriter(d, []*capture.Interface{ifc}, "test")
			}
			sent := 0
			for i := 0; err == nil && i < 1000; i++ {
				frame := bytes.Repeat([]byte{byte(i)}, 60+i%1400)
				if err = h.Packet(&capture.Packet{Interface: ifc, Time: int64(i) * 1e6, Length: len(frame), Data: frame}); err == nil {
					sent++
				}
			}
			if err == nil {
				err = h.Flush()
			}
			f.Close()
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("%s, %d bytes free: error %v, want ENOSPC", format, limit, err)
			}
			if h != nil && h.Packet(&capture.Packet{Interface: ifc, Data: []byte{1}, Length: 1}) == nil {
				t.Fatalf("%s, %d bytes free: a packet after the failure was accepted", format, limit)
			}
			var written uint64
			if h != nil {
				written = h.Written()
			}
			pkts, _, rerr := nstest.ReadPcap(path)
			if limit < 100 {
				// Not even the file header fitted: the file is empty.
				if st, _ := os.Stat(path); st.Size() != 0 || written != 0 {
					t.Fatalf("%s, %d bytes free: %d bytes, %d packets written", format, limit, st.Size(), written)
				}
				continue
			}
			if rerr != nil || uint64(len(pkts)) != written || written == 0 || written > uint64(sent) {
				t.Fatalf("%s, %d bytes free: file reads %d packets (%v), writer says %d, %d accepted", format, limit, len(pkts), rerr, written, sent)
			}
			for i, p := range pkts {
				if len(p.Data) != 60+i%1400 || p.Data[0] != byte(i) {
					t.Fatalf("%s: packet %d is %d bytes of %d", format, i, len(p.Data), p.Data[0])
				}
			}
		}
	}
}
