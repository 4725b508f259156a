package events

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/netobs/netobs/internal/nlwire"
	"github.com/netobs/netobs/nsjoin"
	"golang.org/x/sys/unix"
)

// groupsFor returns the multicast groups of the kinds; links are always
// subscribed, because other objects are labelled with interface names and
// a link going down removes routes without telling.
func groupsFor(k Kinds) uint32 {
	g := uint32(1) << (unix.RTNLGRP_LINK - 1)
	add := func(groups ...uint32) {
		for _, n := range groups {
			g |= 1 << (n - 1)
		}
	}
	if k.Has(Addr) {
		add(unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR)
	}
	if k.Has(Route) {
		add(unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE)
	}
	if k.Has(Neigh) {
		add(unix.RTNLGRP_NEIGH)
	}
	if k.Has(Rule) {
		add(unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE)
	}
	if k.Has(NSID) {
		add(unix.RTNLGRP_NSID)
	}
	return g
}

// newSocket makes a NETLINK_ROUTE socket in the calling thread's network
// namespace. It is the only call made inside a namespace: everything else
// (options, bind) works on the fd from any thread.
func newSocket(nonblock bool) (int, error) {
	flags := unix.SOCK_RAW | unix.SOCK_CLOEXEC
	if nonblock {
		flags |= unix.SOCK_NONBLOCK
	}
	fd, err := unix.Socket(unix.AF_NETLINK, flags, unix.NETLINK_ROUTE)
	return fd, os.NewSyscallError("socket", err)
}

// subscribe binds fd to the groups with a receive buffer of rcvbuf bytes.
// SO_RCVBUFFORCE goes past net.core.rmem_max but needs CAP_NET_ADMIN;
// without it, SO_RCVBUF gets what the limit allows.
func subscribe(fd int, groups uint32, rcvbuf int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
			return os.NewSyscallError("setsockopt SO_RCVBUF", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		return os.NewSyscallError("bind", err)
	}
	// Unicasts from other sockets of the namespace are refused at the
	// source; forged multicasts still arrive, and the reader drops them.
	return nlwire.ConnectKernel(fd)
}

// socketNS returns a handle on the network namespace of socket fd, got
// from the socket itself (ioctl SIOCGSKNS), for a watcher that keeps
// nothing of a namespace but its socket. It needs CAP_NET_ADMIN over that
// namespace. The caller closes the handle.
func socketNS(fd int) (*nsjoin.NS, error) {
	nsfd, err := unix.IoctlRetInt(fd, unix.SIOCGSKNS) // close-on-exec, as the kernel makes it
	if err == unix.EPERM {
		return nil, fmt.Errorf("namespace of a watched socket: %w (needs CAP_NET_ADMIN)", os.NewSyscallError("ioctl SIOCGSKNS", err))
	}
	if err != nil {
		return nil, os.NewSyscallError("ioctl SIOCGSKNS", err)
	}
	defer unix.Close(nsfd)
	// nsjoin adopts no descriptor: it opens its own, through the fd's
	// /proc link, and checks it is a namespace file.
	return nsjoin.OpenFile(fmt.Sprintf("/proc/self/fd/%d", nsfd))
}

var dumpSeq atomic.Uint32

// errDumpInterrupted: the kernel says the dump is inconsistent (the
// object set changed while it was read); read it again.
var errDumpInterrupted = errors.New("dump interrupted by a concurrent change")

// dumpRequest returns a dump request for kind with the given sequence
// number. The header after nlmsghdr is all zero (AF_UNSPEC: every family),
// sized as the kernel expects for the message type.
func dumpRequest(kind Kind, seq uint32) []byte {
	var typ uint16
	var body int
	switch kind {
	case Link:
		typ, body = unix.RTM_GETLINK, unix.SizeofIfInfomsg
	case Addr:
		typ, body = unix.RTM_GETADDR, unix.SizeofIfAddrmsg
	case Route:
		typ, body = unix.RTM_GETROUTE, unix.SizeofRtMsg
	case Neigh:
		typ, body = unix.RTM_GETNEIGH, unix.SizeofNdMsg
	case Rule:
		typ, body = unix.RTM_GETRULE, sizeofFibRuleHdr
	case NSID:
		typ, body = unix.RTM_GETNSID, 4 // struct rtgenmsg, aligned
	}
	b := make([]byte, unix.NLMSG_HDRLEN+body)
	h := (*unix.NlMsghdr)(unsafe.Pointer(&b[0]))
	h.Len = uint32(len(b))
	h.Type = typ
	h.Flags = unix.NLM_F_REQUEST | unix.NLM_F_DUMP
	h.Seq = seq
	return b
}

// dumpSlice is the receive timeout of a dump socket: how often a dump
// waiting for the kernel looks whether the watcher is closing.
const dumpSlice = 100 * time.Millisecond

// dumpWait bounds the wait for each datagram of a dump, so a kernel that
// never answers cannot hang the watcher.
const dumpWait = 5 * time.Second

// dumpKind asks the kernel on fd (a blocking socket of the namespace,
// with a receive timeout of dumpSlice) for every object of kind and calls
// fn for each message of the answer. Datagrams not from the kernel are
// dropped and counted in forged. It returns errStop as soon as closing
// says so.
func dumpKind(fd int, kind Kind, buf []byte, forged *atomic.Uint64, closing func() bool, fn func(h *unix.NlMsghdr, payload []byte) error) error {
	seq := dumpSeq.Add(1)
	if err := unix.Sendto(fd, dumpRequest(kind, seq), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return os.NewSyscallError("sendto", err)
	}
	intr := false
	waited := time.Duration(0)
	for {
		if closing() {
			return errStop
		}
		n, rflags, kernel, err := nlwire.Recv(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			if waited += dumpSlice; waited >= dumpWait {
				return fmt.Errorf("dump %s: no answer from the kernel in %v", kind, dumpWait)
			}
			continue
		}
		if err != nil {
			return os.NewSyscallError("recvmsg", err)
		}
		waited = 0
		if !kernel {
			forged.Add(1)
			continue
		}
		if rflags&unix.MSG_TRUNC != 0 {
			return fmt.Errorf("dump %s: message larger than the %d-byte buffer", kind, len(buf))
		}
		done := false
		err = eachMessage(buf[:n], func(h *unix.NlMsghdr, payload []byte) error {
			if h.Seq != seq {
				return nil
			}
			if h.Flags&unix.NLM_F_DUMP_INTR != 0 {
				intr = true
			}
			switch h.Type {
			case unix.NLMSG_DONE:
				done = true
				return nil
			case unix.NLMSG_ERROR:
				if len(payload) >= 4 {
					if errno := -int32(native.Uint32(payload)); errno != 0 {
						done = true
						return fmt.Errorf("dump %s: %w", kind, unix.Errno(errno))
					}
				}
				return nil
			}
			return fn(h, payload)
		})
		if err != nil {
			return err
		}
		if done {
			if intr {
				return errDumpInterrupted
			}
			return nil
		}
	}
}

// eachMessage walks the netlink messages in b (nlwire.Messages).
func eachMessage(b []byte, fn func(h *unix.NlMsghdr, payload []byte) error) error {
	return nlwire.Messages(b, fn)
}

// setRecvTimeout bounds a blocking dump read, so a kernel that never
// answers cannot hang the watcher.
func setRecvTimeout(fd int, d time.Duration) error {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	return os.NewSyscallError("setsockopt SO_RCVTIMEO", unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv))
}
