package nsjoin

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// setns is the one place nsjoin switches a thread; tests replace it to
// inject failures. setns never blocks, so it is made as a raw system call:
// the scheduler need not prepare to hand the P to another thread.
var setns = func(fd int, t Type) error {
	if _, _, errno := unix.RawSyscall(unix.SYS_SETNS, uintptr(fd), uintptr(t.CloneFlag()), 0); errno != 0 {
		return os.NewSyscallError("setns", errno)
	}
	return nil
}

// origNS holds, per type Do accepts, an fd of the namespace the process
// started in. Every unlocked thread is there: Do never unlocks a thread it
// could not bring back, so restoring to it is restoring to where the thread
// was, without opening /proc/thread-self on every call. A failed attempt
// (EMFILE, say) leaves nothing open and is retried by the next call.
var origNS struct {
	fds atomic.Pointer[[Time + 1]int] // set once all are open
	ids atomic.Pointer[[Time + 1]ID]  // their identities, stored before fds
	mu  sync.Mutex                    // serialises opening them
}

// openOwnNS opens the process's own namespace of type t; tests replace it
// to inject failures.
var openOwnNS = func(t Type) (int, error) {
	fd, err := unix.Open("/proc/self/ns/"+t.String(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("open", err)
	}
	return fd, nil
}

func originalNS(t Type) (int, error) {
	if fds := origNS.fds.Load(); fds != nil {
		return fds[t], nil
	}
	origNS.mu.Lock()
	defer origNS.mu.Unlock()
	if fds := origNS.fds.Load(); fds != nil {
		return fds[t], nil
	}
	var fds [Time + 1]int
	var opened []int
	for _, typ := range []Type{Net, UTS, IPC} {
		fd, err := openOwnNS(typ)
		if err != nil {
			for _, fd := range opened {
				unix.Close(fd)
			}
			return -1, fmt.Errorf("open own %s namespace: %w", typ, err)
		}
		opened = append(opened, fd)
		fds[typ] = fd
	}
	var ids [Time + 1]ID
	for _, typ := range []Type{Net, UTS, IPC} {
		id, err := fdID(fds[typ])
		if err != nil {
			for _, fd := range opened {
				unix.Close(fd)
			}
			return -1, fmt.Errorf("identify own %s namespace: %w", typ, err)
		}
		ids[typ] = id
	}
	origNS.ids.Store(&ids)
	origNS.fds.Store(&fds)
	return fds[t], nil
}

// isOriginal reports whether ns is the namespace of its type that every
// unlocked thread is in, so that Do need not switch.
func (ns *NS) isOriginal() bool {
	if _, err := originalNS(ns.typ); err != nil {
		return false
	}
	id := origNS.ids.Load()[ns.typ]
	return id.Dev == ns.id.Dev && id.Inode == ns.id.Inode
}

// CanDo reports whether Do accepts namespaces of type t: net, uts and ipc.
func CanDo(t Type) bool { return t == Net || t == UTS || t == IPC }

// PanicError carries a panic raised by a function run by Do, with the
// stack where it was raised. Do re-panics with it in the caller's goroutine
// after the thread is back in its own namespace.
type PanicError struct {
	Value any
	Stack []byte
}

func (p *PanicError) Error() string {
	return fmt.Sprintf("panic in namespace: %v\n%s", p.Value, p.Stack)
}

type doResult struct {
	err      error // fn's own error, returned as it is
	nsErr    error // entering or restoring failed
	panicked *PanicError
	// retired: the worker's goroutine ended (its restore failed, or fn
	// called runtime.Goexit); it must not go back to the pool.
	retired bool
}

// Do runs fn on a goroutine locked to an OS thread that has entered the
// namespace, then returns the thread to its original namespace and
// unlocks it. It returns fn's error unchanged, or an *Error if entering or
// restoring failed. If restoring fails, the thread stays locked so the
// runtime terminates it when the goroutine ends, and the error wraps
// ErrThreadDiscarded. A panic in fn is carried back and raised again in the
// caller's goroutine, as a *PanicError, once the thread is restored.
//
// The goroutine comes from a small pool (see the package documentation,
// "Cost"): it holds its thread only for the call and gives it back only
// once the thread is home, and a goroutine whose thread could not be
// brought back ends, locked, instead of returning to the pool.
//
// Do accepts network, UTS and IPC namespaces (see CanDo); others fail with
// ErrUnsupported. fn must make only leaf system calls: goroutines it starts
// run on other threads in the original namespaces. fn must not change the
// thread's namespaces itself. Entering needs CAP_SYS_ADMIN over the
// namespace. When ns is the namespace the process started in (where every
// thread Do returns already is; "self"), Do still runs fn on a locked
// goroutine but makes no setns at all, so it needs no privilege.
func (ns *NS) Do(fn func() error) error {
	if !CanDo(ns.typ) {
		return wrap("do", ns.ref, fmt.Errorf("%w: Do enters net, uts and ipc namespaces only, this is a %s namespace (use Command for it)", ErrUnsupported, ns.typ))
	}
	w := getWorker()
	w.jobs <- doJob{ns: ns, fn: fn}
	r := awaitDo(w.done)
	if !r.retired {
		putWorker(w)
	}
	if r.panicked != nil {
		panic(r.panicked)
	}
	if r.nsErr != nil {
		return wrap("do", ns.ref, r.nsErr)
	}
	return r.err
}

// yieldsBeforePark bounds how long Do yields before it parks on the result.
const yieldsBeforePark = 20

// awaitDo waits for the worker's result. A short function is done after
// one or two yields: the worker, made runnable by Do's send, runs on this
// very thread as soon as the caller yields, and a result that is already
// buffered needs no wake-up. Parking at once would make the scheduler wake
// an idle thread (a futex system call) to make the caller runnable again,
// which on a VM costs as much as the setns calls themselves. A long
// function (a blocking system call) is waited for by parking after a few
// yields.
func awaitDo(done <-chan doResult) doResult {
	for i := 0; i < yieldsBeforePark; i++ {
		select {
		case r := <-done:
			return r
		default:
			runtime.Gosched()
		}
	}
	return <-done
}

// doJob is one Do call handed to a worker.
type doJob struct {
	ns *NS
	fn func() error
}

// worker is a pooled goroutine that runs Do's functions one at a time.
// While idle it is parked on jobs and holds no thread: it locks the
// thread it runs on for the length of one call only, so waking it costs a
// channel send, and it runs on the caller's own thread when the caller
// yields. (An idle goroutine kept locked to its own thread, as the obvious
// pool would have it, can only be woken by waking that thread and handing
// it a P: measured 7 to 13 times a raw setns pair, against 1.1 to 1.6.)
type worker struct {
	jobs chan doJob    // capacity 1: Do's send never blocks
	done chan doResult // capacity 1
	// retired is set when the worker's goroutine ended; for tests.
	retired atomic.Bool
}

// pool holds idle workers, most recently used last, at most maxIdle of
// them. A worker that finds the pool full ends; one taken from an empty
// pool is started.
var pool struct {
	mu   sync.Mutex
	idle []*worker // guarded by mu
	// started and retired count workers, for tests.
	started, retired atomic.Int64
}

// maxIdle bounds the idle workers: GOMAXPROCS at start-up, at least 2.
// More Do calls than that at once start workers that end afterwards.
var maxIdle = max(2, runtime.GOMAXPROCS(0))

func getWorker() *worker {
	pool.mu.Lock()
	if n := len(pool.idle); n > 0 {
		w := pool.idle[n-1]
		pool.idle[n-1] = nil
		pool.idle = pool.idle[:n-1]
		pool.mu.Unlock()
		return w
	}
	pool.mu.Unlock()
	w := &worker{jobs: make(chan doJob, 1), done: make(chan doResult, 1)}
	pool.started.Add(1)
	go w.run()
	return w
}

// putWorker returns an idle worker whose last call ended with its thread
// home and unlocked, or ends it if the pool is full.
func putWorker(w *worker) {
	pool.mu.Lock()
	if len(pool.idle) < maxIdle {
		pool.idle = append(pool.idle, w)
		pool.mu.Unlock()
		return
	}
	pool.mu.Unlock()
	close(w.jobs)
}

// run serves jobs until jobs is closed or a call leaves the goroutine
// unable to go on (see doLocked).
func (w *worker) run() {
	for j := range w.jobs {
		if !w.doLocked(j.ns, j.fn) {
			return
		}
	}
}

// doLocked runs one call on the thread w's goroutine is on, locked for
// the call, and sends its result. It reports whether the goroutine may
// serve another call: false when the thread could not be brought back
// (the goroutine then returns still locked, so the runtime terminates the
// thread) or fn called runtime.Goexit (the goroutine is ending anyway).
func (w *worker) doLocked(ns *NS, fn func() error) (reusable bool) {
	runtime.LockOSThread()
	orig, err := originalNS(ns.typ)
	if err != nil {
		runtime.UnlockOSThread()
		w.done <- doResult{nsErr: err}
		return true
	}
	switched, err := ns.enter()
	if err != nil {
		// A failed setns leaves the thread where it was.
		runtime.UnlockOSThread()
		w.done <- doResult{nsErr: err}
		return true
	}
	var r doResult
	exited := true // stays true if fn calls runtime.Goexit
	defer func() {
		if exited {
			r.nsErr = errors.New("function called runtime.Goexit inside the namespace")
			r.retired = true
		}
		if switched {
			if err := setns(orig, ns.typ); err != nil {
				// Unlocking would hand a foreign thread back to the
				// scheduler. Exiting locked makes the runtime terminate
				// it; the worker is not reused.
				r.nsErr = errors.Join(r.nsErr, fmt.Errorf("%w: return to own %s namespace: %w", ErrThreadDiscarded, ns.typ, err))
				r.retired = true
				reusable = false
				w.retire()
				w.done <- r
				return
			}
		}
		runtime.UnlockOSThread()
		if r.retired {
			w.retire()
		}
		w.done <- r
	}()
	func() {
		defer func() {
			if p := recover(); p != nil {
				buf := make([]byte, 8<<10)
				r.panicked = &PanicError{Value: p, Stack: buf[:runtime.Stack(buf, false)]}
			}
		}()
		r.err = fn()
	}()
	exited = false
	return true
}

func (w *worker) retire() {
	w.retired.Store(true)
	pool.retired.Add(1)
}

// enter switches the locked thread into ns, unless it is there already
// (see isOriginal); switched says whether it did.
func (ns *NS) enter() (switched bool, err error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if ns.closed {
		return false, ErrClosed
	}
	if ns.isOriginal() {
		return false, nil
	}
	err = setns(ns.fd, ns.typ)
	if errors.Is(err, unix.EPERM) {
		return false, fmt.Errorf("%w (needs CAP_SYS_ADMIN)", err)
	}
	return err == nil, err
}
