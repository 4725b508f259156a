package events

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest/nsopen"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/nsjoin"
	"golang.org/x/sys/unix"
)

// Namespace work happens on other threads; the test's main thread stays.
func init() { runtime.LockOSThread() }

func TestParseKinds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Kinds
		err  bool
	}{
		{"link", 1 << Link, false},
		{"link,addr", 1<<Link | 1<<Addr, false},
		{" Route , neigh", 1<<Route | 1<<Neigh, false},
		{"all", KindsAll, false},
		{"rule,nsid", 1<<Rule | 1<<NSID, false},
		{"", 0, true},
		{"links", 0, true},
		{"link,", 0, true},
		{"addr,bogus", 0, true},
	} {
		got, err := ParseKinds(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseKinds(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, ErrUnknownKind) {
			t.Errorf("ParseKinds(%q): error %v is not ErrUnknownKind", tc.in, err)
		}
	}
}

// waitEvent reads ch until an event satisfies match. The bound only stops
// a broken test from hanging; no timing is asserted.
func waitEvent(t *testing.T, ch <-chan Event, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended before %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no event for %s", what)
		}
	}
}

func ip(t *testing.T, args ...string) { t.Helper(); nstest.Run(t, "ip", args...) }

// TestEachKind makes one change of every kind with ip inside a namespace
// and checks that each arrives, labelled with that namespace.
func TestEachKind(t *testing.T) {
	nstest.RequireRoot(t)
	name, other := nstest.NetNS(t), nstest.NetNS(t)
	ns := nsopen.Open(t, name)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := New(ctx, []*nsjoin.NS{ns}, Options{Kinds: KindsAll})
	if err != nil {
		t.Fatal(err)
	}
	// Changes made before the initial state is read may arrive as
	// changes of objects the dump already holds (a link "added" before
	// the dump is reported as changed): wait for it.
	<-w.Ready()
	ch := w.Events()
	br, br2 := nstest.UniqueName("br"), nstest.UniqueName("br")
	steps := []struct {
		do     []string
		kind   string
		action Action
		text   string
	}{
		{[]string{"link", "add", br, "type", "bridge"}, "link", Added, br + ":"},
		{[]string{"addr", "add", "10.77.0.1/24", "dev", br}, "addr", Added, "inet 10.77.0.1/24"},
		{[]string{"link", "set", br, "up"}, "link", Changed, "UP"},
		{[]string{"route", "add", "10.78.0.0/24", "via", "10.77.0.2", "dev", br, "onlink"}, "route", Added, "10.78.0.0/24 via 10.77.0.2 dev " + br},
		{[]string{"neigh", "add", "10.77.0.3", "lladdr", "02:00:00:00:00:03", "dev", br}, "neigh", Added, "10.77.0.3 dev " + br + " lladdr 02:00:00:00:00:03 PERMANENT"},
		{[]string{"rule", "add", "from", "10.77.0.0/24", "lookup", "100", "pref", "1000"}, "rule", Added, "inet 1000: from 10.77.0.0/24 lookup 100"},
		{[]string{"netns", "set", other, "7"}, "nsid", Added, "nsid 7"},
		{[]string{"link", "set", br, "name", br2}, "link", Changed, br2 + ":"},
		{[]string{"rule", "del", "pref", "1000"}, "rule", Deleted, "inet 1000:"},
		{[]string{"addr", "del", "10.77.0.1/24", "dev", br2}, "addr", Deleted, "inet 10.77.0.1/24"},
		{[]string{"link", "del", br2}, "link", Deleted, br2 + ":"},
	}
	inode := ns.ID().Inode
	for _, s := range steps {
		ip(t, append([]string{"-n", name}, s.do...)...)
		ev := waitEvent(t, ch, strings.Join(s.do, " "), func(ev Event) bool {
			return ev.Kind == s.kind && ev.Action == s.action && strings.Contains(ev.Text, s.text)
		})
		if ev.NS.Inode != inode || ev.NS.Name != name {
			t.Errorf("%s: event labelled %+v, want inode %d name %s", strings.Join(s.do, " "), ev.NS, inode, name)
		}
		if ev.Time.IsZero() {
			t.Errorf("%s: no timestamp", strings.Join(s.do, " "))
		}
		if s.kind == "link" && s.text == br2+":" && s.action == Changed {
			if !strings.Contains(strings.Join(ev.Notes, ","), "renamed from "+br) {
				t.Errorf("rename: notes %q lack renamed from %s", ev.Notes, br)
			}
		}
	}
	nstest.CheckThreads(t)
}

// TestManyNamespaces watches three namespaces (one by PID) with one
// watcher; a change in each comes labelled with its own namespace.
func TestManyNamespaces(t *testing.T) {
	nstest.RequireRoot(t)
	a, b := nstest.NetNS(t), nstest.NetNS(t)
	pid := nstest.Sleeper(t)
	refs := []string{a, b, fmt.Sprint(pid)}
	var nss []*nsjoin.NS
	for _, r := range refs {
		nss = append(nss, nsopen.Open(t, r))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := New(ctx, append(nss, nss[0]), Options{Kinds: 1 << Link}) // a twice: deduplicated
	if err != nil {
		t.Fatal(err)
	}
	if n := w.Stats().Namespaces; n != 3 {
		t.Errorf("watching %d namespaces, want 3 (duplicates merged)", n)
	}
	for i, r := range refs {
		br := nstest.UniqueName("br")
		if i == 2 {
			nstest.Run(t, "nsenter", "-t", r, "-n", "ip", "link", "add", br, "type", "bridge")
		} else {
			ip(t, "-n", r, "link", "add", br, "type", "bridge")
		}
		ev := waitEvent(t, w.Events(), "bridge in "+r, func(ev Event) bool { return ev.Kind == "link" && ev.Dev == br })
		if ev.NS.Inode != nss[i].ID().Inode {
			t.Errorf("link %s made in %s reported from %v", br, r, ev.NS)
		}
		if i == 2 && ev.NS.PID != pid {
			t.Errorf("namespace of PID %d labelled %+v", pid, ev.NS)
		}
		if i < 2 && ev.NS.Name != r {
			t.Errorf("namespace %s labelled %+v", r, ev.NS)
		}
	}
	w.Close()
	if _, ok := <-w.Events(); ok {
		t.Error("Events not closed after Close")
	}
}

// TestGoneExplicit: a watched process's namespace ends with a Gone event
// when the process exits, and the stream ends when nothing is left.
func TestGoneExplicit(t *testing.T) {
	nstest.RequireRoot(t)
	pid := nstest.Sleeper(t)
	ns := nsopen.Open(t, fmt.Sprint(pid))
	w, err := New(context.Background(), []*nsjoin.NS{ns}, Options{Rescan: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p, _ := os.FindProcess(pid)
	p.Kill()
	waitEvent(t, w.Events(), "gone", func(ev Event) bool { return ev.Action == Gone && ev.NS.PID == pid })
	for range w.Events() {
	}
	if err := w.Err(); err != nil {
		t.Errorf("Err after the last namespace went: %v", err)
	}
}

// TestInitial reports existing objects first, as Initial events.
func TestInitial(t *testing.T) {
	nstest.RequireRoot(t)
	name := nstest.NetNS(t)
	ip(t, "-n", name, "addr", "add", "10.79.0.1/8", "dev", "lo")
	w, err := New(context.Background(), []*nsjoin.NS{nsopen.Open(t, name)}, Options{Initial: true, Kinds: 1<<Addr | 1<<Link})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	waitEvent(t, w.Events(), "initial lo", func(ev Event) bool { return ev.Action == Initial && ev.Kind == "link" && ev.Dev == "lo" })
	waitEvent(t, w.Events(), "initial address", func(ev Event) bool {
		return ev.Action == Initial && ev.Kind == "addr" && strings.Contains(ev.Text, "10.79.0.1/8")
	})
}

// TestWatchStopCycles: 500 watch/stop cycles leave no goroutine, fd or
// thread behind.
func TestWatchStopCycles(t *testing.T) {
	nstest.RequireRoot(t)
	name := nstest.NetNS(t)
	ns := nsopen.Open(t, name)
	cycle := func() {
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := Watch(ctx, ns, KindsAll)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		for range ch { // drained until closed: the poller has ended
		}
	}
	cycle() // warm up: nsjoin's own fds, runtime threads
	runtime.GC()
	before := nstest.TakeSnapshot(t)
	for i := 0; i < 500; i++ {
		cycle()
	}
	before.CheckLeaks(t, "500 watch/stop cycles")
	nstest.CheckThreads(t)
}

// TestCloseWhileBlocked: Close returns even when nobody reads Events and
// the poller is blocked delivering.
func TestCloseWhileBlocked(t *testing.T) {
	nstest.RequireRoot(t)
	name := nstest.NetNS(t)
	w, err := New(context.Background(), []*nsjoin.NS{nsopen.Open(t, name)}, Options{Initial: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		ip(t, "-n", name, "addr", "add", fmt.Sprintf("10.80.0.%d/32", i+1), "dev", "lo")
	}
	w.Close()
	w.Close() // idempotent
}

func TestNoNamespace(t *testing.T) {
	if _, err := New(context.Background(), nil, Options{}); err == nil {
		t.Error("New with no namespace and no All succeeded")
	}
}

// TestOverflowResync: while nobody reads, a burst overflows a minimal
// receive buffer; the watcher reports a Resync whose changes, applied to
// what it reported before, give the namespace's addresses exactly. Both
// for a namespace named by the caller (dumped through the caller's
// handle) and for one found with All (which keeps only its socket, and
// gets the namespace back from it for the dump).
func TestOverflowResync(t *testing.T) {
	nstest.RequireRoot(t)
	opts := Options{Kinds: 1 << Addr, Initial: true, RcvBuf: 1}
	t.Run("named", func(t *testing.T) {
		name := nstest.NetNS(t)
		ns := nsopen.Open(t, name)
		w, err := New(context.Background(), []*nsjoin.NS{ns}, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		overflowAndCheck(t, w, name, ns.ID().Inode)
	})
	t.Run("discovered", func(t *testing.T) {
		name := nstest.NetNS(t)
		var st unix.Stat_t
		if err := unix.Stat("/run/netns/"+name, &st); err != nil {
			t.Fatal(err)
		}
		all := opts
		all.All = true
		w, err := New(context.Background(), nil, all)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		overflowAndCheck(t, w, name, st.Ino)
	})
}

// overflowAndCheck overflows the socket of namespace name (inode) in w and
// checks the state built from w's events, Resync included, against the
// addresses made. Other namespaces' events are skipped.
func overflowAndCheck(t *testing.T, w *Watcher, name string, inode uint64) {
	t.Helper()
	model := map[string]string{}
	resynced := false
	apply := func(ev Event) {
		if ev.NS.Inode != inode {
			return
		}
		if ev.Action == Resync {
			resynced = true
			for _, c := range ev.Changes {
				apply1(model, c.Action, c.Key, c.Text)
			}
			return
		}
		apply1(model, ev.Action, ev.Key, ev.Text)
	}
	waitEvent(t, w.Events(), "initial addresses of "+name, func(ev Event) bool {
		apply(ev)
		return len(model) == 2 // 127.0.0.1/8 and ::1/128
	})
	// Not reading now: the watcher blocks delivering, the kernel queue fills.
	var batch strings.Builder
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&batch, "addr add 10.81.%d.%d/32 dev lo\n", i/250, i%250+1)
	}
	batch.WriteString("addr del 127.0.0.1/8 dev lo\n")
	f := t.TempDir() + "/batch"
	os.WriteFile(f, []byte(batch.String()), 0o644)
	nstest.Run(t, "ip", "-n", name, "-batch", f)
	waitEvent(t, w.Events(), "the last address", func(ev Event) bool {
		apply(ev)
		_, last := model["addr 1 inet 10.81.1.250/32"]
		_, lo := model["addr 1 inet 127.0.0.1/8"]
		return last && !lo
	})
	if !resynced {
		t.Error("no Resync event after overflowing a minimal buffer")
	}
	if len(model) != 501 {
		t.Errorf("after the resync the state has %d addresses, want 501 (500 added, ::1 kept, 127.0.0.1 deleted)", len(model))
	}
	if st := w.Stats(); st.Resyncs == 0 {
		t.Errorf("Stats().Resyncs = 0 after a resync")
	}
}

func apply1(model map[string]string, a Action, key, text string) {
	if a == Deleted {
		delete(model, key)
	} else {
		model[key] = text
	}
}

// drainEvents reads ch until it is closed. The bound only stops a broken
// test from hanging; no timing is asserted.
func drainEvents(t *testing.T, ch <-chan Event, what string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("%s: Events not closed after the context was cancelled", what)
		}
	}
}

// TestCloseAfterEnd: once the watcher has ended on its own (its only
// namespace gone), Close must not write to the eventfd number it had: by
// then that number may be another file's.
func TestCloseAfterEnd(t *testing.T) {
	nstest.RequireRoot(t)
	pid := nstest.Sleeper(t)
	w, err := New(context.Background(), []*nsjoin.NS{nsopen.Open(t, fmt.Sprint(pid))}, Options{Kinds: 1 << Link})
	if err != nil {
		t.Fatal(err)
	}
	w.wakeMu.Lock()
	wakefd := w.wakefd
	w.wakeMu.Unlock()
	p, _ := os.FindProcess(pid)
	p.Kill()
	for range w.Events() { // ends when the namespace is gone
	}
	// A pipe where the eventfd was.
	var pfd [2]int
	if err := unix.Pipe2(pfd[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	if pfd[0] == wakefd { // the read end took the number: move it
		r, err := unix.Dup(pfd[0])
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(pfd[0])
		pfd[0] = r
	}
	defer unix.Close(pfd[0])
	if pfd[1] != wakefd {
		if err := unix.Dup3(pfd[1], wakefd, unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		unix.Close(pfd[1])
	}
	defer unix.Close(wakefd)
	w.Close()
	var b [16]byte
	if n, err := unix.Read(pfd[0], b[:]); err != unix.EAGAIN {
		t.Errorf("Close wrote %d bytes to fd %d, which is no longer its eventfd (%v)", n, wakefd, err)
	}
}

// TestDrainStopsWhenClosing: the drain before a resync gives up at once
// when the watcher is closing, instead of reading on.
func TestDrainStopsWhenClosing(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	for i := 0; i < 10; i++ {
		unix.Write(fds[1], []byte("queued"))
	}
	w := &Watcher{done: make(chan struct{}), buf: make([]byte, 64), byKey: map[nsKey]*nsw{}}
	n := &nsw{fd: fds[0]}
	if err := w.drain(n); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if _, err := unix.Read(fds[0], make([]byte, 64)); err != unix.EAGAIN {
		t.Fatalf("drain left datagrams queued: %v", err)
	}
	for i := 0; i < 10; i++ {
		unix.Write(fds[1], []byte("queued"))
	}
	close(w.done)
	if err := w.drain(n); err != errStop {
		t.Errorf("drain while closing: %v, want errStop", err)
	}
	if _, err := unix.Read(fds[0], make([]byte, 64)); err != nil {
		t.Errorf("drain read on while closing: %v", err)
	}
}

// TestCancelAtEveryStage: cancelling the context ends the watcher, and
// closes Events, whatever it is doing: not started yet, starting (with
// All), delivering the initial state to nobody, delivering while the
// consumer reads, and right after discovering a new namespace.
func TestCancelAtEveryStage(t *testing.T) {
	nstest.RequireRoot(t)
	name := nstest.NetNS(t)
	var batch strings.Builder
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&batch, "addr add 10.82.%d.%d/32 dev lo\n", i/250, i%250+1)
	}
	f := t.TempDir() + "/batch"
	os.WriteFile(f, []byte(batch.String()), 0o644)
	nstest.Run(t, "ip", "-n", name, "-batch", f)
	ns := nsopen.Open(t, name)
	base := nstest.TakeSnapshot(t)

	t.Run("before start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		w, err := New(ctx, []*nsjoin.NS{ns}, Options{Initial: true})
		if err != nil {
			t.Fatal(err)
		}
		drainEvents(t, w.Events(), "cancelled before New")
	})
	t.Run("during start with All", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		go cancel()
		w, err := New(ctx, nil, Options{All: true, Initial: true})
		if err != nil {
			t.Fatal(err)
		}
		drainEvents(t, w.Events(), "cancelled while New started")
	})
	t.Run("initial state, nobody reading", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		w, err := New(ctx, []*nsjoin.NS{ns}, Options{Initial: true})
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		drainEvents(t, w.Events(), "cancelled with the initial state unread")
	})
	t.Run("while events flow", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		w, err := New(ctx, []*nsjoin.NS{ns}, Options{Kinds: 1 << Addr})
		if err != nil {
			t.Fatal(err)
		}
		g := t.TempDir() + "/flow"
		os.WriteFile(g, []byte(strings.ReplaceAll(batch.String(), "addr add", "addr del")+batch.String()), 0o644)
		done := make(chan error, 1)
		go func() { done <- exec.Command("ip", "-n", name, "-batch", g).Run() }()
		waitEvent(t, w.Events(), "a deletion", func(ev Event) bool { return ev.Action == Deleted })
		cancel()
		drainEvents(t, w.Events(), "cancelled while events flow")
		if err := <-done; err != nil {
			t.Errorf("ip -batch: %v", err)
		}
	})
	t.Run("after a new namespace appeared", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		w, err := New(ctx, nil, Options{All: true, Kinds: 1 << Link})
		if err != nil {
			t.Fatal(err)
		}
		<-w.Ready()
		late := nstest.NetNS(t)
		nstest.Run(t, "ip", "-n", late, "link", "add", nstest.UniqueName("v"), "type", "veth", "peer", "name", nstest.UniqueName("v"))
		waitEvent(t, w.Events(), "appeared "+late, func(ev Event) bool { return ev.Action == Appeared && ev.NS.Name == late })
		cancel() // and nobody reads the state that follows
		drainEvents(t, w.Events(), "cancelled after a namespace appeared")
	})
	base.CheckLeaks(t, "watchers cancelled at every stage")
	nstest.CheckThreads(t)
}
