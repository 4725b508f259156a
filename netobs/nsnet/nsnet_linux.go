package nsnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/netobs/netobs/nsjoin"
	"golang.org/x/sys/unix"
)

// listenBacklog asks for the most the kernel allows; it caps the value at
// the namespace's own net.core.somaxconn.
const listenBacklog = 65535

// Listen creates a stream socket (tcp, tcp4, tcp6, unix, unixpacket) inside
// ns, binds it to address and listens. The listener is a *net.TCPListener
// or *net.UnixListener; a unix socket file it created is removed on Close.
func Listen(ns *nsjoin.NS, network, address string) (net.Listener, error) {
	ln, err := listen(ns, network, address)
	if err != nil {
		return nil, newError("listen", network, address, ns, err)
	}
	return ln, nil
}

func listen(ns *nsjoin.NS, network, address string) (net.Listener, error) {
	s, err := parse(opListen, network, address)
	if err != nil {
		return nil, err
	}
	if s.kind == kindDgram {
		return nil, fmt.Errorf("%w: %s is a datagram network, use ListenPacket", ErrNetwork, network)
	}
	fd, err := socketIn(ns, s, func(fd int, sa unix.Sockaddr) error {
		if s.isInet() {
			// As Go's net.Listen does: restart quickly on a port left in
			// TIME_WAIT.
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				return os.NewSyscallError("setsockopt", err)
			}
		}
		if err := bind(fd, sa, s); err != nil {
			return err
		}
		return os.NewSyscallError("listen", unix.Listen(fd, listenBacklog))
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "nsnet-listener")
	ln, err := net.FileListener(f) // dups the fd, close-on-exec
	f.Close()
	if err != nil {
		return nil, err
	}
	if ul, ok := ln.(*net.UnixListener); ok && s.path[0] != '@' {
		ul.SetUnlinkOnClose(true)
	}
	return ln, nil
}

// ListenPacket creates a datagram socket (udp, udp4, udp6, unixgram) inside
// ns and binds it to address. The value is a *net.UDPConn or *net.UnixConn.
func ListenPacket(ns *nsjoin.NS, network, address string) (net.PacketConn, error) {
	pc, err := listenPacket(ns, network, address)
	if err != nil {
		return nil, newError("listen", network, address, ns, err)
	}
	return pc, nil
}

func listenPacket(ns *nsjoin.NS, network, address string) (net.PacketConn, error) {
	s, err := parse(opListen, network, address)
	if err != nil {
		return nil, err
	}
	if s.kind != kindDgram {
		return nil, fmt.Errorf("%w: %s is not a datagram network, use Listen", ErrNetwork, network)
	}
	fd, err := socketIn(ns, s, func(fd int, sa unix.Sockaddr) error {
		if s.family == famInet4 {
			// Go's net.ListenPacket allows broadcast on IPv4 UDP too.
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); err != nil {
				return os.NewSyscallError("setsockopt", err)
			}
		}
		return bind(fd, sa, s)
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "nsnet-packet")
	pc, err := net.FilePacketConn(f)
	f.Close()
	return pc, err
}

// Dial connects to address inside ns; see DialContext.
func Dial(ns *nsjoin.NS, network, address string) (net.Conn, error) {
	return DialContext(context.Background(), ns, network, address)
}

// DialContext creates a socket inside ns and connects it to address. The
// connect is started inside the namespace without blocking; waiting for it
// to complete happens on the host's poller, bounded by ctx. The value is a
// *net.TCPConn, *net.UDPConn or *net.UnixConn.
func DialContext(ctx context.Context, ns *nsjoin.NS, network, address string) (net.Conn, error) {
	c, err := dial(ctx, ns, network, address)
	if err != nil {
		return nil, newError("dial", network, address, ns, err)
	}
	return c, nil
}

func dial(ctx context.Context, ns *nsjoin.NS, network, address string) (net.Conn, error) {
	s, err := parse(opDial, network, address)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	inProgress := false
	fd, err := socketIn(ns, s, func(fd int, sa unix.Sockaddr) error {
		switch err := unix.Connect(fd, sa); err {
		case nil:
		case unix.EINPROGRESS, unix.EINTR:
			// EINTR: the connect goes on asynchronously, as EINPROGRESS.
			inProgress = true
		default:
			return os.NewSyscallError("connect", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "nsnet-conn") // non-blocking: on the poller
	defer f.Close()
	if inProgress {
		if err := waitConnected(ctx, f); err != nil {
			return nil, err
		}
	}
	return net.FileConn(f) // dups the fd, close-on-exec
}

// aLongTimeAgo is a deadline in the past, to wake a pending wait at once.
var aLongTimeAgo = time.Unix(1, 0)

// waitConnected waits on the poller until the non-blocking connect on f
// has completed or failed, or ctx is done.
func waitConnected(ctx context.Context, f *os.File) error {
	if d, ok := ctx.Deadline(); ok {
		f.SetWriteDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(aLongTimeAgo) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	werr := rc.Write(func(fd uintptr) bool {
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			cerr = os.NewSyscallError("getsockopt", err)
			return true
		}
		switch e := unix.Errno(v); e {
		case 0:
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		default:
			cerr = os.NewSyscallError("connect", e)
			return true
		}
		// SO_ERROR is 0 both when connected and while still connecting
		// (and on a spurious wakeup); getpeername tells them apart.
		if _, err := unix.Getpeername(int(fd)); err != nil {
			if err == unix.ENOTCONN {
				return false
			}
			cerr = os.NewSyscallError("getpeername", err)
		}
		return true
	})
	if werr != nil {
		if errors.Is(werr, os.ErrDeadlineExceeded) {
			if err := ctx.Err(); err != nil {
				return err
			}
			// The poller's deadline can fire just before ctx's timer.
			if _, ok := ctx.Deadline(); ok {
				return context.DeadlineExceeded
			}
		}
		return werr
	}
	return cerr
}

// doSlots bounds how many threads are inside namespaces for this package
// at once.
var doSlots = make(chan struct{}, 8)

// socketIn creates a socket for s inside ns and runs setup on it there,
// with the address already converted (a zone resolved in the namespace).
// It returns the fd, non-blocking and close-on-exec, or closes it on error.
func socketIn(ns *nsjoin.NS, s *spec, setup func(fd int, sa unix.Sockaddr) error) (int, error) {
	if ns == nil {
		return -1, ErrNoNamespace
	}
	// Each Do holds an OS thread; bounding them keeps a burst of dials
	// from making the runtime start a thread per dial.
	doSlots <- struct{}{}
	defer func() { <-doSlots }()
	fd := -1
	err := ns.Do(func() error {
		s2 := *s
		sock, err := newSocket(&s2)
		if err != nil {
			return err
		}
		sa, err := sockaddr(sock, &s2)
		if err == nil {
			err = setup(sock, sa)
		}
		if err != nil {
			unix.Close(sock)
			return err
		}
		fd = sock
		return nil
	})
	if err != nil {
		if fd >= 0 {
			// fn succeeded but the thread could not be restored: the
			// socket is fine, the caller still gets an error, so drop it.
			unix.Close(fd)
		}
		return -1, unwrapOwn(ns, err)
	}
	return fd, nil
}

// newSocket creates the socket in the calling thread's namespace. A
// dual-stack wildcard falls back to IPv4 when the namespace has no IPv6.
func newSocket(s *spec) (int, error) {
	var dom, typ int
	switch s.family {
	case famInet4:
		dom = unix.AF_INET
	case famInet6:
		dom = unix.AF_INET6
	case famUnix:
		dom = unix.AF_UNIX
	}
	switch s.kind {
	case kindStream:
		typ = unix.SOCK_STREAM
	case kindDgram:
		typ = unix.SOCK_DGRAM
	case kindSeqpacket:
		typ = unix.SOCK_SEQPACKET
	}
	typ |= unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
	fd, err := unix.Socket(dom, typ, 0)
	if err == unix.EAFNOSUPPORT && s.dualFallback {
		s.family, s.ip = famInet4, netip.IPv4Unspecified()
		fd, err := unix.Socket(unix.AF_INET, typ, 0)
		return fd, os.NewSyscallError("socket", err)
	}
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if s.family == famInet6 {
		v := 0
		if s.v6only {
			v = 1
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("setsockopt", err)
		}
	}
	return fd, nil
}

// sockaddr converts s for the socket fd, resolving an IPv6 zone name to an
// interface index of the namespace the thread is in.
func sockaddr(fd int, s *spec) (unix.Sockaddr, error) {
	switch s.family {
	case famInet4:
		return &unix.SockaddrInet4{Port: int(s.port), Addr: s.ip.As4()}, nil
	case famInet6:
		sa := &unix.SockaddrInet6{Port: int(s.port), Addr: s.ip.As16()}
		if s.zone != "" {
			idx, err := zoneIndex(fd, s.zone)
			if err != nil {
				return nil, err
			}
			sa.ZoneId = idx
		}
		return sa, nil
	default:
		return &unix.SockaddrUnix{Name: s.path}, nil
	}
}

func zoneIndex(fd int, zone string) (uint32, error) {
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifr, err := unix.NewIfreq(zone)
	if err != nil {
		return 0, fmt.Errorf("%w: zone %q: %v", ErrAddress, zone, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		if err == unix.ENODEV {
			return 0, fmt.Errorf("%w: zone %q: no such interface in the namespace", ErrAddress, zone)
		}
		return 0, os.NewSyscallError("ioctl SIOCGIFINDEX", err)
	}
	return ifr.Uint32(), nil
}

func bind(fd int, sa unix.Sockaddr, s *spec) error {
	err := unix.Bind(fd, sa)
	switch {
	case err == nil:
		return nil
	case (err == unix.EACCES || err == unix.EPERM) && s.isInet():
		return fmt.Errorf("%w (port %d is privileged in this namespace: binding it needs CAP_NET_BIND_SERVICE)", os.NewSyscallError("bind", err), s.port)
	case err == unix.EADDRNOTAVAIL && s.isInet():
		return fmt.Errorf("%w (%s is not an address of this namespace)", os.NewSyscallError("bind", err), s.ip)
	}
	return os.NewSyscallError("bind", err)
}

// unwrapOwn drops nsjoin's "do REF:" prefix, which Error repeats.
func unwrapOwn(ns *nsjoin.NS, err error) error {
	var ne *nsjoin.Error
	if errors.As(err, &ne) && ne.Ref == ns.Ref() && ne.Op == "do" {
		return ne.Err
	}
	return err
}

func newError(op, network, address string, ns *nsjoin.NS, err error) error {
	ref := "<nil>"
	if ns != nil {
		ref = ns.Ref()
	}
	return &Error{Op: op, Net: network, Addr: address, NS: ref, Err: err}
}
