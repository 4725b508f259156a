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

// TestThreadHygiene runs 100,000 Do calls from many goroutines, some of
// whose functions fail, some panic (recovered by the caller), and some of
// whose restores are made to fail; afterwards no thread of the process may
// be in a foreign namespace and the process must still work.
func TestThreadHygiene(t *testing.T) {
	name := nstest.NetNS(t)
	ns, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	injectRestoreFailures(t)

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
						switch {
						case i%997 == 0:
							failRestore.Store(unix.Gettid(), true)
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
