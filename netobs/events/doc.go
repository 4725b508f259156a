// Package events streams routing-netlink events (links, addresses, routes,
// neighbours, rules, nsids) from one, many or all network namespaces, each
// event labelled with the namespace it came from.
//
// # Network namespaces
//
// For every namespace it watches, the package opens a NETLINK_ROUTE socket
// inside that namespace through nsjoin's Do (the socket is created on a
// locked thread that has entered the namespace, and is then used from the
// host) and subscribes to the multicast groups of the kinds asked for. All
// sockets are read by one goroutine through one epoll instance, with one
// shared receive buffer, so watching a thousand namespaces costs a thousand
// file descriptors and a few kilobytes of state each, not a thread or a
// goroutine each. A namespace found with Options.All keeps nothing but its
// socket (which keeps the namespace alive): when it must be dumped again,
// the namespace is got back from the socket (ioctl SIOCGSKNS) and closed
// after, so N namespaces take N file descriptors, not 2N. A namespace
// named by the caller also keeps its own handle (and a PID reference its
// pidfd). Sockets created in the caller's own namespace are made without
// entering it, so watching "self" needs no privilege.
//
// # Never silent
//
// The kernel drops multicast messages when a socket's receive queue is full
// and reports it once, as ENOBUFS, on the next read. Each socket therefore
// gets a large receive buffer (SO_RCVBUFFORCE where permitted), and the
// package keeps the state each namespace had as last reported: on ENOBUFS
// it discards what is queued, dumps the namespace again, and emits one
// Resync event that lists what changed against the state last reported.
// Replaying events over a newer snapshot converges, because every later
// change of an object arrives after the dump.
//
// # Only the kernel is believed
//
// Any process with CAP_NET_ADMIN inside a watched namespace can send
// netlink messages to the watcher's sockets there, by unicast to their
// port ids or by multicast to the groups they joined. The sockets are
// connected to the kernel, so other senders' unicasts are refused; every
// datagram whose sender port id is not 0 (the kernel) is dropped unread
// and counted in Stats.Forged. What the kernel sends is parsed by this
// package itself, without trusting a length (the netlink library's
// parsers panic on malformed input and are not used on it).
//
// # Namespaces that come and go
//
// With Options.All every network namespace on the system is watched: those
// named under /run/netns (watched with inotify) and those of every process
// (/proc rescanned periodically), deduplicated by namespace identity. A
// watched namespace holds a socket, which keeps the kernel object alive, so
// "gone" means unreachable: no name and no process refers to it any more.
// A namespace found after the start is subscribed to first and then
// dumped; its state is reported as Initial events after its Appeared
// event, so nothing made in it before the subscription is lost. One that
// lives less than Options.Rescan (a process's) or about 10ms (a named
// one) may never be seen.
// Then a Gone event is emitted and its socket closed. Namespaces named
// explicitly end the same way when their process exits or their name or
// path disappears.
//
// # Privileges
//
// Entering another namespace needs CAP_SYS_ADMIN; a large receive buffer
// needs CAP_NET_ADMIN (without it the buffer is capped by
// net.core.rmem_max); listing other users' processes' namespaces needs
// CAP_SYS_PTRACE. Options.All needs CAP_SYS_ADMIN and CAP_NET_ADMIN (the
// latter to get a namespace back from its socket).
package events
