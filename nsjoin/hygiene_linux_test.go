package nsjoin

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/netobs/netobs/internal/nstest"
	"golang.org/x/sys/unix"
)

// failRestore marks threads (by TID) whose next restore must fail.
var failRestore sync.Map

// injectRestoreFailures makes setns fail when a thread marked in
// failRestore tries to return to its original namespace, and undoes that
// when the test ends.
func injectRestoreFailures(t *testing.T) {
	real := setns
	setns = func(fd int, typ Type) error {
		if orig, _ := originalNS(typ); fd == orig {
			if _, marked := failRestore.LoadAndDelete(unix.Gettid()); marked {
				return os.NewSyscallError("setns", unix.EPERM)
			}
		}
		return real(fd, typ)
	}
	t.Cleanup(func() { setns = real })
}

// checkEnterFromHome makes setns count the calls that enter a namespace
// from a thread that is not home: Do's pooled workers must only ever be
// handed threads that are.
func checkEnterFromHome(t *testing.T) *atomic.Int64 {
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var away atomic.Int64
	real := setns
	setns = func(fd int, typ Type) error {
		if orig, _ := originalNS(typ); fd != orig && typ == Net {
			if link, _ := os.Readlink("/proc/thread-self/ns/net"); link != own {
				away.Add(1)
			}
		}
		return real(fd, typ)
	}
	t.Cleanup(func() { setns = real })
	return &away
}

// checkPool fails if an idle worker is one whose goroutine ended, or if
// more are idle than the bound.
func checkPool(t *testing.T) {
	t.Helper()
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if len(pool.idle) > maxIdle {
		t.Errorf("%d idle workers, more than the bound %d", len(pool.idle), maxIdle)
	}
	for _, w := range pool.idle {
		if w.retired.Load() {
			t.Fatalf("a retired worker is back in the pool")
		}
	}
}

// TestThreadHygiene runs 100,000 Do calls from many goroutines, some of
// whose functions fail, some panic (recovered by the caller), and some of
// whose restores are made to fail; afterwards no thread of the process may
// be in a foreign namespace and the process must still work. Every call
// must have entered from a thread that was home (pooled workers included),
// no function may run on a thread whose restore failed (its worker is never
// reused), and every such worker must have been retired.
func TestThreadHygiene(t *testing.T) {
	name := nstest.NetNS(t)
	ns, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	injectRestoreFailures(t)
	away := checkEnterFromHome(t)
	retiredBefore := pool.retired.Load()
	var poisoned sync.Map // TIDs of threads whose restore was made to fail
	var onPoisoned atomic.Int64

	const total, workers = 100000, 32
	var calls, fnErrs, panics, discarded, wrongNS atomic.Int64
	errFn := errors.New("fn failed")
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < total; i += workers {
				calls.Add(1)
				func() {
					defer func() {
						if p := recover(); p != nil {
							if _, ok := p.(*PanicError); !ok {
								t.Errorf("panic value %T, want *PanicError", p)
							}
							panics.Add(1)
						}
					}()
					err := ns.Do(func() error {
						link, _ := os.Readlink("/proc/thread-self/ns/net")
						if link != ns.String() {
							wrongNS.Add(1)
						}
						if _, ok := poisoned.Load(unix.Gettid()); ok {
							onPoisoned.Add(1)
						}
						switch {
						case i%997 == 0:
							failRestore.Store(unix.Gettid(), true)
							poisoned.Store(unix.Gettid(), true)
						case i%13 == 0:
							panic(fmt.Sprintf("call %d panics", i))
						case i%7 == 0:
							return errFn
						}
						return nil
					})
					switch {
					case errors.Is(err, ErrThreadDiscarded):
						discarded.Add(1)
					case errors.Is(err, errFn):
						fnErrs.Add(1)
					case err != nil:
						t.Errorf("Do: %v", err)
					}
				}()
			}
		}(w)
	}
	wg.Wait()
	t.Logf("%d calls: %d fn errors, %d panics, %d threads discarded", calls.Load(), fnErrs.Load(), panics.Load(), discarded.Load())
	if wrongNS.Load() != 0 {
		t.Errorf("%d functions ran outside the target namespace", wrongNS.Load())
	}
	if discarded.Load() == 0 || panics.Load() == 0 || fnErrs.Load() == 0 {
		t.Errorf("the injected failures did not all happen")
	}
	if n := away.Load(); n != 0 {
		t.Errorf("%d calls entered the namespace from a thread that was not home", n)
	}
	if n := onPoisoned.Load(); n != 0 {
		t.Errorf("%d functions ran on a thread whose restore had failed", n)
	}
	if n := pool.retired.Load() - retiredBefore; n != discarded.Load() {
		t.Errorf("%d workers retired, %d threads discarded", n, discarded.Load())
	}
	checkPool(t)
	nstest.CheckThreads(t)
	// The process still works: Do again, and a plain syscall on this thread.
	if err := ns.Do(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Readlink("/proc/self/ns/net"); err != nil {
		t.Fatal(err)
	}
}

// TestNoLeaks opens, enters and closes 10,000 times and checks that no file
// descriptor or goroutine is left over.
func TestNoLeaks(t *testing.T) {
	name := nstest.NetNS(t)
	// Warm up the cached original-namespace descriptors first.
	if ns, err := Open(name); err == nil {
		ns.Do(func() error { return nil })
		ns.Close()
	}
	before := nstest.TakeSnapshot(t)
	for i := 0; i < 10000; i++ {
		ns, err := Open(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := ns.Do(func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		ns.Close()
	}
	before.CheckLeaks(t, "10,000 open/Do/close cycles")
	nstest.CheckThreads(t)
}

// TestDoOwnNamespaceMakesNoSetns: Do on the process's own namespace runs
// fn without any setns (so it needs no CAP_SYS_ADMIN), in that namespace;
// Do on another namespace still enters and leaves it.
func TestDoOwnNamespaceMakesNoSetns(t *testing.T) {
	var calls atomic.Int64
	real := setns
	setns = func(fd int, typ Type) error { calls.Add(1); return real(fd, typ) }
	t.Cleanup(func() { setns = real })

	for _, typ := range []Type{Net, UTS, IPC} {
		self, err := Self(typ)
		if err != nil {
			t.Fatal(err)
		}
		var link string
		err = self.Do(func() error {
			link, _ = os.Readlink("/proc/thread-self/ns/" + typ.String())
			return nil
		})
		self.Close()
		if err != nil {
			t.Fatalf("Do on own %s namespace: %v", typ, err)
		}
		if link != self.String() {
			t.Errorf("Do on own %s namespace ran in %s, want %s", typ, link, self)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("Do on own namespaces made %d setns calls, want 0", n)
	}

	nstest.RequireRoot(t)
	ns, err := Open(nstest.NetNS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ns.Do(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("Do on another namespace made %d setns calls, want 2 (there and back)", n)
	}
}

// TestDoPoolReuse: sequential Do calls reuse one pooled worker; a worker
// whose restore failed is retired, not reused, and the next call gets a
// fresh one that works; many calls at once leave at most maxIdle workers
// idle.
func TestDoPoolReuse(t *testing.T) {
	ns, err := Open(nstest.NetNS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	injectRestoreFailures(t)
	fn := func() error { return nil }
	ns.Do(fn)
	started := pool.started.Load()
	for i := 0; i < 1000; i++ {
		if err := ns.Do(fn); err != nil {
			t.Fatal(err)
		}
	}
	if n := pool.started.Load() - started; n > 1 {
		t.Errorf("1000 sequential calls started %d workers, want them to reuse one", n)
	}

	var poisonedTID int
	err = ns.Do(func() error {
		poisonedTID = unix.Gettid()
		failRestore.Store(poisonedTID, true)
		return nil
	})
	if !errors.Is(err, ErrThreadDiscarded) {
		t.Fatalf("Do with a failed restore: %v, want ErrThreadDiscarded", err)
	}
	checkPool(t)
	for i := 0; i < 1000; i++ {
		var tid int
		if err := ns.Do(func() error { tid = unix.Gettid(); return nil }); err != nil {
			t.Fatal(err)
		}
		if tid == poisonedTID {
			t.Fatalf("a call ran on thread %d, whose restore had failed", tid)
		}
	}

	var wg sync.WaitGroup
	release := make(chan struct{})
	for i := 0; i < 4*maxIdle; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ns.Do(func() error { <-release; return nil })
		}()
	}
	close(release)
	wg.Wait()
	checkPool(t)
	nstest.CheckThreads(t)
}

// TestNewNet: unnamed namespaces from many goroutines at once, with every
// seventh return home made to fail; each is new, none is named, and
// afterwards no thread is in a foreign namespace and nothing leaked.
func TestNewNet(t *testing.T) {
	nstest.RequireRoot(t)
	self, err := Self(Net)
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	// The handles of the process's own namespaces that every return home
	// uses are opened once, on first use: open them before counting fds.
	warm, err := NewNet()
	if err != nil {
		t.Fatal(err)
	}
	warm.Close()
	names, _ := Names()
	before := nstest.TakeSnapshot(t)
	real := setns
	var restores atomic.Int64
	setns = func(fd int, typ Type) error {
		if orig, _ := originalNS(typ); fd == orig && restores.Add(1)%7 == 0 {
			return os.NewSyscallError("setns", unix.EPERM)
		}
		return real(fd, typ)
	}
	var wg sync.WaitGroup
	var discarded, made atomic.Int64
	seen := sync.Map{}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				ns, err := NewNet()
				if errors.Is(err, ErrThreadDiscarded) {
					discarded.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if ns.ID() == self.ID() {
					t.Errorf("NewNet returned the process's own namespace %v", ns)
				}
				if _, dup := seen.LoadOrStore(ns.ID(), true); dup {
					t.Errorf("NewNet returned %v twice", ns)
				}
				if gone, why := ns.Gone(); gone {
					t.Errorf("new namespace %v is gone: %s", ns, why)
				}
				made.Add(1)
				ns.Close()
			}
		}()
	}
	wg.Wait()
	setns = real
	if discarded.Load() == 0 || made.Load() == 0 {
		t.Fatalf("made %d, discarded %d: the test did not exercise both paths", made.Load(), discarded.Load())
	}
	// Names are machine-wide: other processes may add and remove theirs
	// meanwhile, so look only for names that came and stayed.
	after, _ := Names()
	if added := newNames(names, after); len(added) > 0 {
		t.Errorf("ip netns names %v appeared (before: %v): NewNet must name nothing", added, names)
	}
	before.CheckLeaks(t, fmt.Sprintf("%d NewNet calls", made.Load()+discarded.Load()))
	nstest.CheckThreads(t)
}

// newNames is the names in after that are not in before.
func newNames(before, after []string) []string {
	had := make(map[string]bool, len(before))
	for _, n := range before {
		had[n] = true
	}
	var added []string
	for _, n := range after {
		if !had[n] {
			added = append(added, n)
		}
	}
	return added
}
