package sockdiag_test

import (
	"os"
	"runtime"
	"strings"
	"testing"

	inst "github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/sockdiag"
	"github.com/netobs/netobs/nsjoin"
	"github.com/netobs/netobs/nstest"
)

func init() { runtime.LockOSThread() }

func TestListOwnSockets(t *testing.T) {
	ns := nstest.NewNamedNetNS(t)
	name := ns.Ref()
	ln := nstest.Listen(t, ns, "tcp6", "[::1]:0")
	before := inst.FDCount(t)
	socks, err := sockdiag.List(ns, sockdiag.Options{TCP: true, Listening: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 1 {
		t.Fatalf("%d sockets, want the one listener: %+v", len(socks), socks)
	}
	s := socks[0]
	if s.Proto != "tcp" || s.State != "LISTEN" || s.LocalString() != ln.Addr().String() || s.PeerString() != "[::]:*" || !s.V6Only || s.Inode == 0 {
		t.Errorf("socket %+v (%s -> %s)", s, s.LocalString(), s.PeerString())
	}
	if len(s.Procs) != 1 || s.Procs[0].PID != os.Getpid() {
		t.Errorf("owners %+v, want this process", s.Procs)
	}
	// Nothing of it in the host's listing.
	self, _ := nsjoin.Open("self")
	defer self.Close()
	host, err := sockdiag.List(self, sockdiag.Options{TCP: true, NoProcs: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range host {
		if h.Inode == s.Inode {
			t.Errorf("the namespace's socket shows in the host's listing")
		}
	}
	if after := inst.FDCount(t) - 1; after != before { // - the self handle
		t.Errorf("%d fds after listing, %d before", after, before)
	}
	if _, err := sockdiag.List(self, sockdiag.Options{}); err != nil {
		t.Fatal(err)
	}
	closed, _ := nsjoin.Open(name)
	closed.Close()
	if _, err := sockdiag.List(closed, sockdiag.Options{}); err == nil || !strings.Contains(err.Error(), "list sockets in "+name) {
		t.Errorf("closed handle: %v", err)
	}
	inst.CheckThreads(t)
}
