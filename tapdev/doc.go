// Package tapdev creates TUN and TAP devices inside a network namespace and
// lets the host read and write their frames.
//
// # Which namespace, which thread
//
// A TUN/TAP device lands in the network namespace of the thread that opens
// /dev/net/tun. Create therefore opens it inside nsjoin's Do, on a locked
// thread that is in the target namespace, and also creates there the
// netlink sockets used to configure the device. These file descriptors
// stay bound to the target after Do returns the thread home, so
// every other call of this package runs on ordinary goroutines in the host
// namespaces. tapdev never calls setns itself.
//
// # What Create adds and Close removes
//
// Create makes the device (one file descriptor per queue; the first with
// IFF_TUN_EXCL, so that an existing device of that name, persistent ones
// included, is refused in the same call that would make it, never
// attached to), configures it in the target (MTU, MAC, transmit queue
// length, addresses, up, routes) and, in mirror mode, mirrors the ingress
// and egress traffic of an existing interface of the target into the
// device with tc: a clsact qdisc (if there is none) and on each of its
// parents a u32 filter that matches every frame, with a mirred
// egress-mirror action whose control is "continue", so the target's own
// filters run as before. The filters go in front of the target's, and
// their action cookie names the netobs process (see Cleanup). If any step
// fails, everything done so far is undone before Create returns. Close
// removes its own filters (and the clsact qdisc if a netobs made it and
// no filter is left on it) and closes the queues, which makes the kernel
// delete the device unless it was made persistent. Close is idempotent
// and unblocks pending reads. Cleanup removes what netobs processes
// killed with SIGKILL left behind.
//
// # Discarding what the namespace sends
//
// With Config.Discard the device drops every frame the namespace sends
// through it, after the frame passed the packet taps: an AF_PACKET socket
// bound to the device reads them, and the device's queue stays empty
// (each frame counts as TX dropped). Writes are not affected. A TAP
// device gets a classic BPF program that accepts nothing
// (TUNATTACHFILTER); the kernel takes that only on taps, so a TUN device
// gets an eBPF socket filter that returns 0 ("r0 = 0; exit",
// TUNSETFILTEREBPF), which the kernel runs at the same place in
// tun_net_xmit. The filter belongs to the device, not to one queue.
// Create loads the program with bpf(2) in the caller's namespaces before
// it makes anything (a program belongs to no namespace), attaches it and
// closes its descriptor at once: the device holds the program, and no
// BPF descriptor stays open. Close detaches it; the kernel frees it
// then. Loading needs CAP_BPF or CAP_SYS_ADMIN in the initial user
// namespace unless kernel.unprivileged_bpf_disabled is 0, which the
// classic filter does not need: that is why TAP devices keep it. Without
// that privilege Create fails with ErrNoDiscard and leaves nothing.
//
// # File descriptors
//
// Every descriptor is close-on-exec and non-blocking under Go's poller:
// /dev/net/tun is opened with O_CLOEXEC|O_NONBLOCK, before the descriptor
// is wrapped in an *os.File. Queues never call (*os.File).Fd, which would
// switch the descriptor to blocking mode.
//
// # Reading in batches
//
// Queue.ReadBatch reads every frame that is queued, up to a batch, with one
// io_uring_enter (reads flagged RWF_NOWAIT, so an empty queue returns
// EAGAIN at once and the wait for the next frame happens in Go's poller,
// where Close and read deadlines reach it). Where io_uring is unavailable
// (or fails the requests: kernels before 5.6 lack IORING_OP_READ and
// IORING_OP_WRITE) it falls back to one read(2) or write(2) per frame.
// The rings are made on the first ReadBatch and WriteBatch in the host
// namespace and closed with the queue.
//
// # Privileges
//
// Entering the target needs CAP_SYS_ADMIN over it; creating a device and
// configuring it needs CAP_NET_ADMIN in the target's user namespace;
// Discard on a TUN device needs CAP_BPF (see above).
package tapdev
