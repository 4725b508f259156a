// Package attach is the observer behind `netobs attach`: it creates a TAP
// or TUN device inside a target network namespace (package tapdev), reads
// every frame the namespace sends through it, writes them out as text,
// JSON, pcap or pcapng, optionally injects the frames of a capture file
// into the namespace through the device, and removes the device when it
// stops.
//
// # When Run stops
//
// Run stops when the context is cancelled (the CLI cancels it on SIGINT,
// SIGTERM, SIGHUP and SIGQUIT), when Count frames have been read, when the
// target namespace goes away (the process named by a PID reference exits,
// the nsfs file of a path or `ip netns` reference is deleted or now names
// another namespace), when the device or the mirrored interface is
// deleted from inside, or, with
// InjectOnly, when the injection is done, or when the output's reader goes
// away (EPIPE). Frames still queued in the kernel when Run is cancelled or
// the namespace goes away are read and written out before it returns. In
// every case the output is flushed and valid, and the counts are in the
// Result.
//
// # How frames are read
//
// A device's frames are read through an AF_PACKET TPACKET_V3 ring
// (package capture's reader) bound to the device in the target and kept
// to what the device transmits: the kernel copies each frame the
// namespace sends into the ring at the device's packet taps, in the
// sender's context, and Run reads it from shared memory with no system
// call per frame. The device is created with tapdev's Discard, so it
// drops each frame after the taps instead of queueing it a second time (a
// classic BPF filter on a TAP device, an eBPF one on a TUN device). The
// output is the same as from the queue: Ethernet frames from a TAP
// device, IP packets (LINKTYPE_RAW, the ring's link type on the TUN
// device's ARPHRD_NONE) from a TUN device. Frames that do not pass the
// packet taps (pktgen, XDP redirects into the device) are not seen this
// way; they count in Result.Dropped. Options.ReadQueue reads the device's
// queues instead (io_uring batches), as Run always does for persistent
// devices (the filter would outlive netobs), and for a TUN device when
// the process may not load its eBPF filter (CAP_BPF; Run then says so on
// Log).
//
// # Threads and privileges
//
// Run enters the target only through tapdev.Create and capture.Open
// (nsjoin's Do); reading, writing and the watch on the namespace run on
// ordinary goroutines in the host namespaces. It needs CAP_SYS_ADMIN over
// the target and CAP_NET_ADMIN in it, and CAP_NET_RAW for the ring; for
// the ring on a TUN device also CAP_BPF (or CAP_SYS_ADMIN) in the initial
// user namespace.
package attach
