package tapdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/netobs/netobs/internal/nlwire"
	"golang.org/x/sys/unix"
)

// setupStats readies the socket Create made for Stats: connected to the
// kernel, so that other sockets' unicasts are refused, and with a receive
// timeout, so that a kernel that never answers cannot hang Stats.
func (d *Device) setupStats() error {
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(d.stats, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return os.NewSyscallError("setsockopt SO_RCVTIMEO", err)
	}
	return nlwire.ConnectKernel(d.stats)
}

func (d *Device) closeStats() {
	if d.stats >= 0 {
		unix.Close(d.stats)
		d.stats = -1
	}
}

// Stats reads the device's counters in the target namespace. An error
// wrapping ErrGone means the device was deleted there.
func (d *Device) Stats() (Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return Stats{}, fmt.Errorf("stats of %s: %w", d.name, ErrClosed)
	}
	st, err := readStats(d.stats, d.index)
	if err != nil {
		return Stats{}, fmt.Errorf("stats of %s in %s: %w", d.name, d.ref, err)
	}
	return st, nil
}

var statsSeq atomic.Uint32

// readStats asks the kernel on fd for the link index and returns its
// 64-bit counters. Datagrams not from the kernel, and answers to other
// requests, are dropped.
func readStats(fd, index int) (Stats, error) {
	seq := statsSeq.Add(1)
	req := make([]byte, unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.RTM_GETLINK)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], seq)
	ne.PutUint32(req[unix.NLMSG_HDRLEN+4:], uint32(index))
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Stats{}, os.NewSyscallError("sendto", err)
	}
	buf := make([]byte, 32<<10) // the kernel's answer for one link fits
	for {
		n, rflags, kernel, err := nlwire.Recv(fd, buf, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return Stats{}, errors.New("no answer from the kernel in time")
		case err != nil:
			return Stats{}, os.NewSyscallError("recvmsg", err)
		case !kernel:
			continue // sent by a process of the namespace: dropped
		case rflags&unix.MSG_TRUNC != 0:
			return Stats{}, fmt.Errorf("answer larger than %d bytes", len(buf))
		}
		st, done, err := parseStats(buf[:n], seq)
		if done || err != nil {
			return st, err
		}
	}
}

// parseStats looks for the answer to seq in one datagram from the kernel.
func parseStats(b []byte, seq uint32) (st Stats, done bool, err error) {
	err = nlwire.Messages(b, func(h *unix.NlMsghdr, p []byte) error {
		if h.Seq != seq || done {
			return nil
		}
		switch h.Type {
		case unix.NLMSG_ERROR:
			done = true
			if len(p) < 4 {
				return errors.New("short netlink error message")
			}
			switch errno := unix.Errno(-int32(binary.NativeEndian.Uint32(p))); errno {
			case 0:
				return errors.New("kernel sent no link")
			case unix.ENODEV:
				return fmt.Errorf("%w: %w", ErrGone, os.NewSyscallError("rtm_getlink", errno))
			default:
				return os.NewSyscallError("rtm_getlink", errno)
			}
		case unix.RTM_NEWLINK:
			done = true
			if len(p) < unix.SizeofIfInfomsg {
				return errors.New("short link message")
			}
			as, err := nlwire.Attrs(p[unix.SizeofIfInfomsg:])
			if err != nil {
				return err
			}
			for _, a := range as {
				if a.Type == unix.IFLA_STATS64 && len(a.Value) >= 64 {
					u := func(i int) uint64 { return binary.NativeEndian.Uint64(a.Value[8*i:]) }
					// struct rtnl_link_stats64: rx_packets, tx_packets,
					// rx_bytes, tx_bytes, rx_errors, tx_errors,
					// rx_dropped, tx_dropped, ...
					st = Stats{RxPackets: u(0), TxPackets: u(1), RxBytes: u(2), TxBytes: u(3), RxDropped: u(6), TxDropped: u(7)}
					return nil
				}
			}
			return errors.New("kernel sent no statistics")
		}
		return nil
	})
	return st, done || err != nil, err
}
