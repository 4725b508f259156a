package tapdev

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/internal/nstest/nsopen"
)

// progExists reports whether the kernel still has the program of that ID
// (BPF_PROG_GET_FD_BY_ID, which needs CAP_SYS_ADMIN).
func progExists(t *testing.T, id uint32) bool {
	t.Helper()
	attr := struct{ id, next, flags uint32 }{id: id}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_GET_FD_BY_ID, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	switch errno {
	case 0:
		unix.Close(int(fd))
		return true
	case unix.ENOENT:
		return false
	}
	t.Fatalf("BPF_PROG_GET_FD_BY_ID %d: %v", id, errno)
	return false
}

// waitProgGone fails the test unless the program of that ID goes away:
// the kernel frees a detached program after an RCU grace period.
func waitProgGone(t *testing.T, id uint32) {
	t.Helper()
	for i := 0; progExists(t, id); i++ {
		if i == 500 {
			t.Fatalf("discard program %d still loaded after Close", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// udp4 is an IPv4/UDP packet from src to dst with a valid header checksum.
func udp4(src, dst netip.Addr, payload string) []byte {
	b := make([]byte, 28+len(payload))
	b[0], b[8], b[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(b[20:], 9999)
	binary.BigEndian.PutUint16(b[22:], 9)
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	copy(b[28:], payload)
	return b
}

// TestLoadDiscardProg: the discard program's descriptor is close-on-exec
// and the program is a socket filter that the kernel names as netobs's.
func TestLoadDiscardProg(t *testing.T) {
	nstest.RequireRoot(t)
	fd, err := loadDiscardProg()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
		t.Errorf("program descriptor flags %#x (%v), want FD_CLOEXEC", fl, err)
	}
	id, err := progID(fd)
	if err != nil || id == 0 {
		t.Fatalf("progID = %d, %v", id, err)
	}
	if !progExists(t, id) {
		t.Errorf("program %d not found by its ID", id)
	}
}

// TestDiscardTUN: a tun made with Discard (an eBPF filter, attached with
// TUNSETFILTEREBPF) queues nothing the namespace sends, each packet counts
// as TX dropped, writes still reach the namespace, Create leaves no BPF
// descriptor open, and Close detaches the program, which the kernel then
// frees. Before tun devices could discard, Create refused this with
// ErrInvalid.
func TestDiscardTUN(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ping")
	nsName := nstest.NetNS(t)
	ns := nsopen.Open(t, nsName)
	fds := nstest.FDsTo(t, "anon_inode:bpf-prog")
	name := nstest.UniqueName("tun")
	d, err := Create(ns, Config{Kind: TUN, Name: name, Discard: true, Queues: 2, Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.8.1/24")}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if n := nstest.FDsTo(t, "anon_inode:bpf-prog"); n != fds {
		t.Errorf("%d BPF program descriptors open after Create, %d before", n, fds)
	}
	if d.filterID == 0 || !progExists(t, d.filterID) {
		t.Fatalf("discard program %d not loaded", d.filterID)
	}
	st := pingDiscarded(t, d, nsName, "10.9.8.2")
	if _, err := d.Write(udp4(netip.MustParseAddr("10.9.8.2"), netip.MustParseAddr("10.9.8.1"), "to the namespace")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if st2, err := d.Stats(); err != nil || st2.RxPackets != st.RxPackets+1 {
		t.Errorf("stats after a write %+v (%v), want RX packets %d", st2, err, st.RxPackets+1)
	}
	id := d.filterID
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if linkExists(t, nsName, name) {
		t.Errorf("%s still in %s after Close", name, nsName)
	}
	waitProgGone(t, id)
	if n := nstest.FDsTo(t, "anon_inode:bpf-prog"); n != fds {
		t.Errorf("%d BPF program descriptors open after Close, %d before", n, fds)
	}
}

// TestDiscardTUNDeletedInside: Close of a discarding tun that the
// namespace deleted succeeds and leaves no program behind.
func TestDiscardTUNDeletedInside(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip")
	nsName := nstest.NetNS(t)
	ns := nsopen.Open(t, nsName)
	name := nstest.UniqueName("tun")
	d, err := Create(ns, Config{Kind: TUN, Name: name, Discard: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	id := d.filterID
	nstest.Run(t, "ip", "-n", nsName, "link", "del", "dev", name)
	if err := d.Close(); err != nil {
		t.Fatalf("Close after the device was deleted: %v", err)
	}
	waitProgGone(t, id)
	if _, err := Create(ns, Config{Kind: TUN, Name: "bad name", Discard: true}); !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "bpf") {
		t.Errorf("invalid config with Discard: %v, want ErrInvalid before any program is loaded", err)
	}
}

// TestBeforeUp: Create calls BeforeUp once the device exists, down and
// without its addresses; an error from it fails Create, which removes the
// device.
func TestBeforeUp(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip")
	nsName := nstest.NetNS(t)
	ns := nsopen.Open(t, nsName)
	name := nstest.UniqueName("tun")
	calls := 0
	hookErr := errors.New("hook failed")
	cfg := Config{Kind: TUN, Name: name, Discard: true, Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.6.1/24")}}
	cfg.BeforeUp = func(d *Device) error {
		calls++
		if d.Name() != name {
			t.Errorf("BeforeUp got %q, want %q", d.Name(), name)
		}
		out := nstest.Run(t, "ip", "-n", nsName, "-o", "addr", "show", "dev", name)
		if link := nstest.Run(t, "ip", "-n", nsName, "-o", "link", "show", "dev", name); strings.Contains(link, ",UP") || strings.Contains(out, "10.9.6.1") {
			t.Errorf("device up or addressed in BeforeUp:\n%s%s", link, out)
		}
		return hookErr
	}
	if _, err := Create(ns, cfg); !errors.Is(err, hookErr) {
		t.Fatalf("Create with a failing BeforeUp: %v", err)
	}
	if calls != 1 {
		t.Errorf("BeforeUp called %d times", calls)
	}
	if linkExists(t, nsName, name) {
		t.Errorf("%s left after BeforeUp failed", name)
	}
	cfg.BeforeUp = func(*Device) error { calls++; return nil }
	d, err := Create(ns, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if calls != 2 {
		t.Errorf("BeforeUp called %d times in all", calls)
	}
	if link := nstest.Run(t, "ip", "-n", nsName, "-o", "link", "show", "dev", name); !strings.Contains(link, ",UP") {
		t.Errorf("device not up after Create:\n%s", link)
	}
}
