// Package nsjoin is netobs's namespace core: it opens Linux namespaces by
// reference, identifies and compares them, lists every namespace on the
// system, runs code inside one, starts commands inside any set of them, and
// keeps named network namespaces compatible with `ip netns`.
//
// # Threads, not processes
//
// A Linux namespace belongs to a thread. Entering one with setns moves only
// the calling OS thread, and Go moves goroutines between threads freely. Do
// therefore runs its function on a goroutine of its own locked to its OS
// thread, switches that thread, runs the function, switches it back, and
// unlocks it only once it is back. If switching back fails, the goroutine
// exits still locked, which makes the Go runtime terminate the thread
// instead of reusing it, and is never used again; the returned error says
// so. No thread of the process is ever left in a foreign namespace: every
// unlocked thread is home.
//
// # Cost
//
// Do's goroutines come from a pool, so a call costs a channel hand-off
// instead of a new goroutine: the caller hands the call to an idle worker
// and yields, and the worker runs on the caller's own thread, locks it for
// the call, enters, runs the function, comes back, unlocks and hands the
// result back. On the process's own namespace ("self") it makes no setns
// at all. Idle workers hold no thread (they are parked goroutines, not
// locked ones: waking a goroutine locked to a sleeping thread costs a
// thread wake-up, several times the setns pair). At rest the pool is at
// most GOMAXPROCS (at least 2) parked goroutines with their stacks, a few
// KiB each, plus the three namespace descriptors Do keeps open: no thread,
// timer or other descriptor. Calls beyond that many at once start extra
// workers that end when their call does. docs/BENCHMARKS.md has the
// measured cost against a raw setns pair.
//
// Inside Do make leaf system calls only: create sockets, open devices, read
// files. Goroutines started there run on other threads, in the host
// namespaces; name resolution may run on another thread too. Create file
// descriptors inside, use them outside: a socket, an AF_PACKET socket, a
// netlink socket or a TUN/TAP device stays bound to the namespace it was
// created in.
//
// # Which namespace types Do accepts
//
// Do accepts network, UTS and IPC namespaces, which the kernel lets one
// thread of a multi-threaded process enter. A mount namespace can be joined
// only by a thread that has unshared its filesystem attributes and never
// runs Go code again, a user or time namespace only by a single-threaded
// process, and a PID namespace only affects children: Do refuses those with
// ErrUnsupported. Command (like nsenter) handles every type by re-executing
// the binary with a hook that joins the namespaces before the Go runtime
// starts; see Command. The hook is linked only into programs that import
// package nsjoin/exechook for its side effect (and are built with cgo);
// elsewhere Command and Unshare fail with ErrHookNotLinked. The hook acts
// only on instructions Start passes through a socket it made, never on the
// environment alone, and never in a setuid or file-capability binary
// (SecureExec).
//
// # References
//
// Open and OpenType take the reference grammar of the netobs CLI: a path to
// an nsfs file (/proc/PID/ns/net, /run/netns/NAME, a bind mount), a decimal
// PID (held by a pidfd so that a reused PID is detected; a thread ID names
// that thread's namespaces), the name of an `ip netns` namespace, or "self".
// A name of digits only is read as a PID; /run/netns/NAME reaches it.
//
// # Privileges
//
// Opening another process's namespace needs the right to ptrace it
// (CAP_SYS_PTRACE for processes of other users); entering one needs
// CAP_SYS_ADMIN in the namespace's owning user namespace, except that Do
// on the process's own namespace ("self") switches nothing and needs no
// privilege; creating or
// deleting named network namespaces needs CAP_SYS_ADMIN for the mounts.
//
// # Initial thread
//
// Programs that use nsjoin should lock their main goroutine to the main
// thread in an init function (runtime.LockOSThread). The main thread cannot
// be discarded by the runtime, so Do must never run on it.
package nsjoin
