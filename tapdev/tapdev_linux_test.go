package tapdev

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest/nsopen"

	"github.com/netobs/netobs/internal/nstest"
)

// The main goroutine keeps the main thread, which must never enter a
// namespace (see nsjoin).
func init() { runtime.LockOSThread() }

func linkExists(t *testing.T, nsName, dev string) bool {
	t.Helper()
	args := []string{"link", "show", "dev", dev}
	if nsName != "" {
		args = append([]string{"-n", nsName}, args...)
	}
	return exec.Command("ip", args...).Run() == nil
}

func TestValidate(t *testing.T) {
	bad := []Config{
		{},
		{Kind: TAP, Name: "averyveryverylongname"},
		{Kind: TAP, Name: "a/b"},
		{Kind: TAP, Name: "a b"},
		{Kind: TAP, Name: ".."},
		{Kind: TAP, MTU: 10},
		{Kind: TAP, MTU: 70000},
		{Kind: TUN, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}},
		{Kind: TAP, MAC: net.HardwareAddr{1, 0, 0, 0, 0, 1}},
		{Kind: TAP, Queues: 1000},
		{Kind: TAP, Mirror: "x/y"},
		{Kind: TAP, TxQueueLen: 1 << 32},
		{Kind: TAP, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("10.0.0.1/24")}},
		{Kind: TAP, Addrs: []netip.Prefix{netip.MustParsePrefix("fd00::1/64"), netip.MustParsePrefix("fd00::1/80")}},
		{Kind: TAP, Routes: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("10.9.1.0/16")}},
	}
	for _, c := range bad {
		if err := c.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalid", c, err)
		}
	}
	good := Config{Kind: TAP, Name: "obs%d", MTU: 1400, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Queues: 4, TxQueueLen: 1<<32 - 1,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("10.0.0.2/24")}}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", good, err)
	}
}

func TestCreateReadWriteClose(t *testing.T) {
	nstest.RequireTools(t, "ip", "ping")
	nsName := nstest.NetNS(t)
	ns := nsopen.Open(t, nsName)
	name := nstest.UniqueName("tap")
	d, err := Create(ns, Config{Kind: TAP, Name: name, MTU: 1400,
		MAC:   net.HardwareAddr{2, 0, 0, 0, 0, 1},
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24"), netip.MustParsePrefix("fd00:9::1/64")}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Name() != name || d.Kind() != TAP || len(d.Queues()) != 1 {
		t.Fatalf("device %s kind %v queues %d", d.Name(), d.Kind(), len(d.Queues()))
	}
	if !linkExists(t, nsName, name) {
		t.Fatalf("%s not in %s", name, nsName)
	}
	if linkExists(t, "", name) {
		t.Fatalf("%s is in the host namespace", name)
	}
	out := nstest.Run(t, "ip", "-n", nsName, "addr", "show", "dev", name)
	for _, want := range []string{"10.9.0.1/24", "fd00:9::1/64", "mtu 1400", "02:00:00:00:00:01", "UP"} {
		if !strings.Contains(out, want) {
			t.Errorf("ip addr show %s lacks %q:\n%s", name, want, out)
		}
	}
	nstest.CheckThreads(t)

	// A ping from inside makes the namespace ARP for 10.9.0.2 through the tap.
	ping := exec.Command("ip", "netns", "exec", nsName, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.9.0.2")
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	defer ping.Wait()
	buf := make([]byte, 2048)
	d.Queues()[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	sawARP := false
	for !sawARP {
		n, err := d.Read(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		// Ethernet type ARP, request for 10.9.0.2.
		if n >= 42 && buf[12] == 0x08 && buf[13] == 0x06 && net.IP(buf[38:42]).Equal(net.IPv4(10, 9, 0, 2)) {
			sawARP = true
		}
	}
	// Answer it: the namespace must learn the neighbour from our frame.
	reply := arpReply(buf, net.HardwareAddr{2, 0, 0, 0, 0, 2}, net.IPv4(10, 9, 0, 2))
	if _, err := d.Write(reply); err != nil {
		t.Fatalf("write: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(nstest.Run(t, "ip", "-n", nsName, "neigh", "show", "10.9.0.2"), "02:00:00:00:00:02") {
		if time.Now().After(deadline) {
			t.Fatal("injected ARP reply did not reach the neighbour table")
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, err := d.Stats()
	if err != nil || st.TxPackets == 0 || st.RxPackets == 0 {
		t.Errorf("stats %+v, %v", st, err)
	}

	// Close unblocks a pending read.
	d.Queues()[0].SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := d.Read(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("read after close: %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if linkExists(t, nsName, name) {
		t.Errorf("%s still in %s after Close", name, nsName)
	}
}

func arpReply(req []byte, mac net.HardwareAddr, ip net.IP) []byte {
	b := make([]byte, 42)
	copy(b[0:6], req[6:12])
	copy(b[6:12], mac)
	b[12], b[13] = 0x08, 0x06
	copy(b[14:22], []byte{0, 1, 8, 0, 6, 4, 0, 2})
	copy(b[22:28], mac)
	copy(b[28:32], ip.To4())
	copy(b[32:38], req[22:28])
	copy(b[38:42], req[28:32])
	return b
}

func TestTUNSleeperMultiqueuePersist(t *testing.T) {
	pid := nstest.Sleeper(t)
	ns := nsopen.Open(t, itoa(pid))
	name := nstest.UniqueName("tun")
	d, err := Create(ns, Config{Kind: TUN, Name: name, Queues: 3, Persist: true, TxQueueLen: 4000,
		Addrs:  []netip.Prefix{netip.MustParsePrefix("10.9.1.1/24")},
		Routes: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16")}})
	if err != nil {
		t.Fatal(err)
	}
	nsenter := func(args ...string) string {
		return nstest.Run(t, "nsenter", append([]string{"-t", itoa(pid), "-n"}, args...)...)
	}
	if len(d.Queues()) != 3 {
		t.Errorf("%d queues", len(d.Queues()))
	}
	out := nsenter("ip", "-d", "link", "show", "dev", name)
	for _, want := range []string{"multi_queue", "persist", "qlen 4000", "tun"} {
		if !strings.Contains(out, want) {
			t.Errorf("ip -d link show lacks %q:\n%s", want, out)
		}
	}
	if out := nsenter("ip", "route", "show", "10.99.0.0/16"); !strings.Contains(out, name) {
		t.Errorf("route not through %s: %q", name, out)
	}
	d.Close()
	if !strings.Contains(nsenter("ip", "link", "show", "dev", name), name) {
		t.Fatal("persistent device gone after Close")
	}
	nsenter("ip", "link", "del", name)
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestCreateErrorsLeaveNothing(t *testing.T) {
	nsName := nstest.NetNS(t)
	ns := nsopen.Open(t, nsName)
	name := nstest.UniqueName("tap")
	d, err := Create(ns, Config{Kind: TAP, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fds := nstest.FDCount(t)
	if _, err := Create(ns, Config{Kind: TAP, Name: name}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate name: %v, want ErrExists", err)
	}
	if _, err := Create(ns, Config{Kind: TAP, Name: nstest.UniqueName("tap"), Mirror: "nosuch0"}); err == nil || !strings.Contains(err.Error(), "no such interface") {
		t.Errorf("mirror of missing interface: %v", err)
	}
	// Invalid at configuration time: an address the kernel refuses.
	other := nstest.UniqueName("tap")
	if d2, err := Create(ns, Config{Kind: TAP, Name: other, Routes: []netip.Prefix{netip.MustParsePrefix("224.0.0.0/4")}, Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.3.1/24")}, Mirror: name}); err != nil {
		// Mirroring a tap into another tap is fine; a multicast route may
		// be refused or not depending on the kernel. Either way nothing
		// may be left behind when it fails.
		t.Logf("create: %v", err)
	} else {
		d2.Close()
	}
	if _, err := Create(ns, Config{Kind: TAP, Name: other + "x", Mirror: other + "x"}); err == nil {
		t.Error("mirroring a device into itself succeeded")
	}
	if linkExists(t, nsName, other+"x") {
		t.Error("device left behind after failed Create")
	}
	if got := nstest.FDCount(t); got != fds {
		t.Errorf("%d fds after failed Creates, %d before", got, fds)
	}
	nstest.CheckThreads(t)
}

func TestMirror(t *testing.T) {
	nstest.RequireTools(t, "ip", "ping", "tc")
	a, b := nstest.NetNS(t), nstest.NetNS(t)
	va, _ := nstest.Veth(t, a, "10.9.4.1/24", b, "10.9.4.2/24")
	ns := nsopen.Open(t, a)
	d, err := Create(ns, Config{Kind: TAP, Name: nstest.UniqueName("tap"), Mirror: va})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Mirroring() != va {
		t.Errorf("Mirroring() = %q", d.Mirroring())
	}
	if out := nstest.Run(t, "tc", "-n", a, "filter", "show", "dev", va, "ingress"); !strings.Contains(out, "mirred") {
		t.Errorf("no mirred filter on %s ingress:\n%s", va, out)
	}
	nstest.Run(t, "ip", "netns", "exec", b, "ping", "-c", "2", "-i", "0.2", "10.9.4.1")
	q := d.Queues()[0]
	q.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 2048)
	var req, rep bool
	for !(req && rep) {
		n, err := q.Read(buf)
		if err != nil {
			t.Fatalf("read mirrored frames (request %v, reply %v): %v", req, rep, err)
		}
		// IPv4 ICMP: type 8 request (ingress), type 0 reply (egress).
		if n > 34 && buf[12] == 8 && buf[13] == 0 && buf[23] == 1 {
			switch buf[34] {
			case 8:
				req = true
			case 0:
				rep = true
			}
		}
	}
	d.Close()
	out := nstest.Run(t, "tc", "-n", a, "qdisc", "show", "dev", va)
	if strings.Contains(out, "clsact") {
		t.Errorf("clsact left on %s after Close:\n%s", va, out)
	}
}

func TestCycles(t *testing.T) {
	nsName := nstest.NetNS(t)
	ns := nsopen.Open(t, nsName)
	// Warm up the runtime's threads and the poller before counting.
	for i := 0; i < 5; i++ {
		d, err := Create(ns, Config{Kind: TAP})
		if err != nil {
			t.Fatal(err)
		}
		d.Close()
	}
	before := nstest.TakeSnapshot(t)
	buf := make([]byte, 2048)
	for i := 0; i < 500; i++ {
		d, err := Create(ns, Config{Kind: TAP, Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.5.1/24")}})
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		done := make(chan struct{})
		go func() { d.Read(buf); close(done) }()
		d.Close()
		<-done
	}
	before.CheckLeaks(t, "500 create/close cycles")
	if out := nstest.Run(t, "ip", "-n", nsName, "-o", "link", "show", "type", "tun"); strings.TrimSpace(out) != "" {
		t.Errorf("devices left: %s", out)
	}
	nstest.CheckThreads(t)
}

// TestCreateNeverAttachesToExisting: TUNSETIFF on the name of an existing
// persistent TAP device attaches to it unless IFF_TUN_EXCL is set (and
// songgao/water then cleared its persist flag, so the user's device went
// away with netobs). Create refuses the name in the same call that would
// make the device, so there is no window between a check and the
// creation, and the user's device stays as it was. A descriptor of
// /dev/net/tun that another part of the process holds, attached to
// nothing, stays open through the failure.
func TestCreateNeverAttachesToExisting(t *testing.T) {
	nstest.RequireTools(t, "ip")
	nsName := nstest.NetNS(t)
	ns := nsopen.Open(t, nsName)
	name := nstest.UniqueName("tap")
	nstest.Run(t, "ip", "-n", nsName, "tuntap", "add", "dev", name, "mode", "tap")
	other, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	var q *Queue
	err = ns.Do(func() error {
		var err error
		q, _, err = openQueue(TAP, name, false, true)
		return err
	})
	if q != nil {
		q.close()
	}
	if !errors.Is(err, ErrExists) {
		t.Errorf("opening a queue of the existing persistent %s: %v, want ErrExists", name, err)
	}
	if _, err := Create(ns, Config{Kind: TAP, Name: name}); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "already in") {
		t.Errorf("Create of the existing %s: %v", name, err)
	}
	if out := nstest.Run(t, "ip", "-n", nsName, "-d", "link", "show", "dev", name); !strings.Contains(out, "persist on") {
		t.Errorf("the user's persistent %s lost its persist flag:\n%s", name, out)
	}
	if _, err := other.Stat(); err != nil {
		t.Errorf("another /dev/net/tun descriptor of the process was closed: %v", err)
	}
}

// pingDiscarded pings dst from inside nsName through the discarding
// device d, checks that every echo request counts as TX dropped, none as
// sent, and that no queue of d holds one, and returns d's counters.
func pingDiscarded(t *testing.T, d *Device, nsName, dst string) Stats {
	t.Helper()
	before, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	const pings = 5
	exec.Command("ip", "netns", "exec", nsName, "ping", "-c", strconv.Itoa(pings), "-i", "0.01", "-W", "0.1", dst).Run()
	st, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if got := st.TxDropped - before.TxDropped; got < pings || st.TxPackets != before.TxPackets {
		t.Errorf("stats %+v after %d pings (before %+v): want %d more TX dropped, no TX packet", st, pings, before, pings)
	}
	bufs, sizes := [][]byte{make([]byte, 2048)}, []int{0}
	for i, q := range d.Queues() {
		if n, err := q.TryReadBatch(bufs, sizes); n != 0 || err != nil {
			t.Errorf("queue %d: TryReadBatch: %d frames, %v; want none queued", i, n, err)
		}
	}
	return st
}

// TestDiscard: a tap made with Discard queues nothing the namespace
// sends (each frame counts as TX dropped) while writes still reach the
// namespace; a persistent one is refused. TestDiscardTUN does the same
// for a tun.
func TestDiscard(t *testing.T) {
	nstest.RequireTools(t, "ip", "ping")
	nsName := nstest.NetNS(t)
	ns := nsopen.Open(t, nsName)
	if _, err := Create(ns, Config{Kind: TAP, Name: nstest.UniqueName("tap"), Discard: true, Persist: true}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Discard with Persist: %v, want ErrInvalid", err)
	}
	if _, err := Create(ns, Config{Kind: TUN, Name: nstest.UniqueName("tun"), Discard: true, Persist: true}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Discard with Persist on a tun: %v, want ErrInvalid", err)
	}
	name := nstest.UniqueName("tap")
	d, err := Create(ns, Config{Kind: TAP, Name: name, Discard: true, Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.7.1/24")}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	nstest.Run(t, "ip", "-n", nsName, "neigh", "replace", "10.9.7.2", "lladdr", "02:00:00:00:00:02", "dev", name)
	st := pingDiscarded(t, d, nsName, "10.9.7.2")
	frame := arpReply(make([]byte, 42), net.HardwareAddr{2, 0, 0, 0, 0, 2}, net.IPv4(10, 9, 7, 2))
	if _, err := d.Write(frame); err != nil {
		t.Fatalf("write: %v", err)
	}
	if st2, err := d.Stats(); err != nil || st2.RxPackets != st.RxPackets+1 {
		t.Errorf("stats after a write %+v (%v), want RX packets %d", st2, err, st.RxPackets+1)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if linkExists(t, nsName, name) {
		t.Errorf("%s still in %s after Close", name, nsName)
	}
}
