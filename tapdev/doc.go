// Package tapdev creates TUN and TAP devices inside a network namespace and
// lets the host read and write their frames.
//
// # Which namespace, which thread
//
// A TUN/TAP device lands in the network namespace of the thread that opens
// /dev/net/tun. Create therefore opens it (through songgao/water) inside
// nsjoin's Do, on a locked thread that is in the target namespace, and also
// creates there the netlink socket used to configure the device. Both file
// descriptors stay bound to the target after Do returns the thread home, so
// every other call of this package runs on ordinary goroutines in the host
// namespaces. tapdev never calls setns itself.
//
// # What Create adds and Close removes
//
// Create makes the device (one file descriptor per queue), configures it in
// the target (MTU, MAC, transmit queue length, addresses, up, routes) and,
// in mirror mode, mirrors the ingress and egress traffic of an existing
// interface of the target into the device with tc (a clsact qdisc and two
// matchall filters with a mirred action). If any step fails, everything done
// so far is undone before Create returns. Close removes the tc rules it
// added (the clsact qdisc too if it created it) and closes the queues,
// which makes the kernel delete the device unless it was made persistent.
// Close is idempotent and unblocks pending reads.
//
// # File descriptors
//
// Every descriptor is close-on-exec and non-blocking under Go's poller:
// water opens /dev/net/tun without O_CLOEXEC, so Create sets the flag while
// holding syscall.ForkLock, before any fork can inherit it. Queues never
// call (*os.File).Fd, which would switch the descriptor to blocking mode.
//
// # Reading in batches
//
// Queue.ReadBatch reads every frame that is queued, up to a batch, with one
// io_uring_enter (reads flagged RWF_NOWAIT, so an empty queue returns
// EAGAIN at once and the wait for the next frame happens in Go's poller,
// where Close and read deadlines reach it). Where io_uring is unavailable
// it falls back to one read(2) per frame. The ring is made on the first
// ReadBatch in the host namespace and closed with the queue.
//
// # Privileges
//
// Entering the target needs CAP_SYS_ADMIN over it; creating a device and
// configuring it needs CAP_NET_ADMIN in the target's user namespace.
package tapdev
