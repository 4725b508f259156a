package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"time"

	"github.com/netobs/netobs/internal/nlwire"
	"github.com/netobs/netobs/nsjoin"
	"golang.org/x/sys/unix"
)

// Sizes and offsets of the sock_diag structures (linux/inet_diag.h).
const (
	sizeofReqV2 = 56 // struct inet_diag_req_v2
	sizeofMsg   = 72 // struct inet_diag_msg
	attrV6Only  = 11 // INET_DIAG_SKV6ONLY
)

// List returns the sockets of ns that o selects, sorted by protocol, state
// and local address.
func List(ns *nsjoin.NS, o Options) ([]Socket, error) {
	socks, err := list(ns, o)
	if err != nil {
		return nil, fmt.Errorf("list sockets in %s: %w", ns.Ref(), unwrapOwn(ns, err))
	}
	return socks, nil
}

func list(ns *nsjoin.NS, o Options) ([]Socket, error) {
	if !o.TCP && !o.UDP {
		o.TCP, o.UDP = true, true
	}
	nl, ioc := -1, -1
	err := ns.Do(func() error {
		var err error
		nl, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
		if err != nil {
			return os.NewSyscallError("socket", err)
		}
		// A datagram socket of the namespace, for turning the device
		// indexes of bound sockets into that namespace's names.
		ioc, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			ioc = -1 // names are a nicety
		}
		return nil
	})
	defer func() {
		if nl >= 0 {
			unix.Close(nl)
		}
		if ioc >= 0 {
			unix.Close(ioc)
		}
	}()
	if err != nil {
		return nil, err
	}
	// The dump is answered at once; a timeout only bounds a kernel that
	// never answers.
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(nl, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, os.NewSyscallError("setsockopt", err)
	}
	// Any process of the namespace may send to the socket: unicasts are
	// refused once it is connected to the kernel, and dump drops whatever
	// else does not come from the kernel.
	if err := nlwire.ConnectKernel(nl); err != nil {
		return nil, err
	}
	var socks []Socket
	seq := uint32(0)
	for _, p := range []struct {
		on    bool
		name  string
		proto uint8
		st    uint32
	}{
		{o.TCP, "tcp", unix.IPPROTO_TCP, 1 << stateListen},
		{o.UDP, "udp", unix.IPPROTO_UDP, 1 << stateClose},
	} {
		if !p.on {
			continue
		}
		states := ^uint32(0)
		if o.Listening {
			states = p.st
		}
		for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
			seq++
			got, err := dump(nl, seq, fam, p.proto, states)
			if err != nil {
				return nil, fmt.Errorf("%s%s: %w", p.name, map[uint8]string{unix.AF_INET: "4", unix.AF_INET6: "6"}[fam], err)
			}
			for i := range got {
				got[i].Proto = p.name
			}
			socks = append(socks, got...)
		}
	}
	if ioc >= 0 {
		names := map[uint32]string{}
		for i := range socks {
			if idx := socks[i].Iface; idx != 0 {
				if _, ok := names[idx]; !ok {
					names[idx] = ifName(ioc, idx)
				}
				socks[i].IfName = names[idx]
			}
		}
	}
	if !o.NoProcs {
		addProcs(socks)
	}
	sort.SliceStable(socks, func(i, j int) bool {
		a, b := &socks[i], &socks[j]
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		if a.State != b.State {
			return a.State < b.State
		}
		if c := a.Local.Compare(b.Local); c != 0 {
			return c < 0
		}
		return a.Peer.Compare(b.Peer) < 0
	})
	return socks, nil
}

// dump asks for every socket of one family and protocol in the given
// states and reads the answer to the end.
func dump(fd int, seq uint32, family, proto uint8, states uint32) ([]Socket, error) {
	req := make([]byte, unix.NLMSG_HDRLEN+sizeofReqV2)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	r := req[unix.NLMSG_HDRLEN:]
	r[0], r[1] = family, proto
	ne.PutUint32(r[4:], states)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, os.NewSyscallError("sendto", err)
	}
	var socks []Socket
	buf := make([]byte, 64<<10)
	for {
		n, _, kernel, err := nlwire.Recv(fd, buf, 0)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return nil, os.NewSyscallError("recvmsg", err)
		}
		if !kernel {
			// Sent by a process of the namespace, not the kernel: dropped.
			continue
		}
		var done bool
		socks, done, err = parseDatagram(buf[:n], seq, family, socks)
		if done || err != nil {
			return socks, err
		}
	}
}

// parseDatagram appends the sockets in one datagram of the answer to seq
// to socks, and says whether the answer is complete.
func parseDatagram(b []byte, seq uint32, family uint8, socks []Socket) ([]Socket, bool, error) {
	done := false
	err := nlwire.Messages(b, func(h *unix.NlMsghdr, data []byte) error {
		if h.Seq != seq || done {
			return nil
		}
		switch h.Type {
		case unix.NLMSG_DONE:
			done = true
		case unix.NLMSG_ERROR:
			if len(data) >= 4 {
				if errno := -int32(binary.NativeEndian.Uint32(data)); errno != 0 {
					done = true
					if unix.Errno(errno) == unix.ENOENT && family == unix.AF_INET6 {
						return nil // no IPv6 in this kernel
					}
					return os.NewSyscallError("sock_diag", unix.Errno(errno))
				}
			}
		case unix.SOCK_DIAG_BY_FAMILY:
			s, err := parseMsg(data)
			if err != nil {
				return err
			}
			socks = append(socks, s)
		}
		return nil
	})
	if err != nil {
		return nil, true, err
	}
	return socks, done, nil
}

func parseMsg(b []byte) (Socket, error) {
	if len(b) < sizeofMsg {
		return Socket{}, errors.New("short inet_diag_msg")
	}
	ne := binary.NativeEndian
	family, state := b[0], b[1]
	id := b[4:52]
	s := Socket{
		State: stateName(state),
		Iface: ne.Uint32(id[36:]),
		RecvQ: ne.Uint32(b[56:]),
		SendQ: ne.Uint32(b[60:]),
		UID:   ne.Uint32(b[64:]),
		Inode: uint64(ne.Uint32(b[68:])),
	}
	sport, dport := binary.BigEndian.Uint16(id[0:]), binary.BigEndian.Uint16(id[2:])
	if family == unix.AF_INET {
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(id[4:8])), sport)
		s.Peer = netip.AddrPortFrom(netip.AddrFrom4([4]byte(id[20:24])), dport)
	} else {
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(id[4:20])), sport)
		s.Peer = netip.AddrPortFrom(netip.AddrFrom16([16]byte(id[20:36])), dport)
	}
	// Attributes follow the message; one that does not fit ends them.
	as, _ := nlwire.Attrs(b[sizeofMsg:])
	for _, a := range as {
		if a.Type == attrV6Only && len(a.Value) >= 1 {
			s.V6Only = a.Value[0] != 0
		}
	}
	return s, nil
}

func ifName(fd int, idx uint32) string {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return ""
	}
	ifr.SetUint32(idx)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFNAME, ifr); err != nil {
		return ""
	}
	return ifr.Name()
}

// unwrapOwn drops nsjoin's "do REF:" prefix, which List repeats.
func unwrapOwn(ns *nsjoin.NS, err error) error {
	var ne *nsjoin.Error
	if errors.As(err, &ne) && ne.Ref == ns.Ref() && ne.Op == "do" {
		return ne.Err
	}
	return err
}
