package test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/internal/nstest/nsopen"
	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/netobs/nsnet"
	"github.com/netobs/netobs/nsjoin"
	_ "github.com/netobs/netobs/nsjoin/exechook" // nsjoin.Command re-executes this test binary
	"github.com/netobs/netobs/tapdev"
)

// TestEveryDescriptorCloseOnExec opens one of everything netobs makes
// inside a namespace (namespace handles, a TAP device mirroring lo, capture sockets, a
// netlink watcher, the io_uring rings of batch I/O, listening, connected and datagram sockets) and checks
// that no descriptor of the process lacks close-on-exec.
func TestEveryDescriptorCloseOnExec(t *testing.T) {
	nstest.RequireRoot(t)
	inherited := nstest.NonCloexec(t)
	name, ns := nsopen.New(t)
	uts, err := nsjoin.Self(nsjoin.UTS)
	if err != nil {
		t.Fatal(err)
	}
	defer uts.Close()

	// Mirroring lo adds the socket tapdev makes its tc filters with.
	dev, err := tapdev.Create(ns, tapdev.Config{Kind: tapdev.TAP, Name: nstest.UniqueName("tap"),
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.79.0.1/24")}, Mirror: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	// The batch reader and writer make their io_uring descriptors on
	// first use.
	q := dev.Queues()[0]
	q.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	q.ReadBatch([][]byte{make([]byte, 2048)}, make([]int, 1))
	q.SetReadDeadline(time.Time{})
	if _, err := q.WriteBatch([][]byte{make([]byte, 60)}); err != nil {
		t.Fatal(err)
	}
	if rings := nstest.FDsTo(t, "anon_inode:[io_uring]"); rings < 2 {
		nstest.Unavailable(t, fmt.Sprintf("%d io_uring descriptors after a batch read and write, want 2: is io_uring disabled (sysctl kernel.io_uring_disabled)?", rings))
	}
	cp, err := capture.Open([]capture.Target{{NS: ns}}, capture.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := events.New(ctx, []*nsjoin.NS{ns}, events.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ln, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := nsnet.Dial(ns, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pc, err := nsnet.ListenPacket(ns, "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	cmd, err := nsjoin.Command([]*nsjoin.NS{ns}, "true")
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	t.Logf("everything open in %s", name)
	nstest.CheckCloexec(t, inherited)
}
