package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/netobs/netobs/nsjoin"
	"golang.org/x/sys/unix"
)

// block returns the header of the ring's current block: the kernel's
// struct tpacket_block_desc, whose union holds a tpacket_hdr_v1.
func (r *ring) block() *unix.TpacketHdrV1 {
	bd := (*unix.TpacketBlockDesc)(unsafe.Pointer(&r.mem[r.cur*r.blockSize]))
	return (*unix.TpacketHdrV1)(unsafe.Pointer(&bd.Hdr))
}

const (
	// tpacket3HdrLen is TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): where
	// the sockaddr_ll follows each packet's header.
	tpacket3HdrLen = (unix.SizeofTpacket3Hdr + unix.TPACKET_ALIGNMENT - 1) &^ (unix.TPACKET_ALIGNMENT - 1)

	pollInterval  = 250 * time.Millisecond
	statsInterval = time.Second
)

// ring is one AF_PACKET socket with its TPACKET_V3 ring and the eventfd
// that wakes its reader when it is read alone. Only its reader goroutine
// touches the ring; close unmaps it and is called only once that reader is
// done with it (by the reader itself when its part ends, else by
// Capture.Close after every reader has returned).
type ring struct {
	ifc    *Interface
	target Target
	fd     int
	efdMu  sync.Mutex // guards efd and file: wake may race with close
	efd    int
	// file holds fd in Go's poller, where the reader of a lone ring
	// waits (wait): a goroutine parked there costs the runtime less than
	// one blocked in poll(2). Closing it closes fd.
	file      *os.File
	rc        syscall.RawConn
	woken     atomic.Bool // wake was called
	mem       []byte
	blockSize int
	nblocks   int
	cur       int
	ifindex   int // bound interface, 0 for any
	// down: the bound interface went down (ENETDOWN). The kernel reports
	// that once, at the down that precedes a removal too, so while it is
	// down periodic looks whether it is still there.
	down    bool
	loIndex int // loopback's index in this namespace, -1 if unknown
	snaplen int
	blockTO time.Duration

	received atomic.Uint64
	dropped  atomic.Uint64
	captured atomic.Uint64
	// delivered counts packets a sink took from the current block and has
	// not added to captured yet (reader only).
	delivered uint64

	stopping  bool      // the eventfd fired: drain what is ready and return
	lastStats time.Time // reader only
	head      [sllHeaderLen]byte
}

// openRing makes the socket for one device in one namespace. Only socket(2)
// runs inside the namespace; the socket carries the namespace with it, so
// ioctls, bind and the ring set-up run from the host.
func openRing(t Target, device string, cfg Config, comp *compiler, ifc *Interface) (r *ring, err error) {
	r = &ring{ifc: ifc, target: t, fd: -1, efd: -1, loIndex: -1, snaplen: cfg.Snaplen, blockTO: cfg.BlockTimeout}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	sockType := unix.SOCK_RAW
	if device == AnyInterface {
		sockType = unix.SOCK_DGRAM
	}
	if r.fd, err = socketIn(t.NS, sockType); err != nil {
		return r, err
	}
	link := LinkLinuxSLL
	if device != AnyInterface {
		if r.ifindex, err = ifIndex(r.fd, device); err != nil {
			if errors.Is(err, unix.ENODEV) {
				return r, fmt.Errorf("no interface %s in namespace %s (%s)", device, ifc.Label, ifc.Namespace)
			}
			return r, err
		}
		hw, err := ifHWType(r.fd, device)
		if err != nil {
			return r, err
		}
		switch hw {
		case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK:
			link = LinkEthernet
		case unix.ARPHRD_NONE:
			link = LinkRaw
		default:
			// Link headers libpcap would have to translate: read them
			// cooked, as libpcap does for unknown hardware types.
			unix.Close(r.fd)
			r.fd = -1
			if r.fd, err = socketIn(t.NS, unix.SOCK_DGRAM); err != nil {
				return r, err
			}
		}
	}
	if idx, err := ifIndex(r.fd, "lo"); err == nil {
		r.loIndex = idx
	}
	ifc.LinkType = link

	prog, err := comp.compile(link)
	if err != nil {
		return r, err
	}
	if err := attachFilter(r.fd, prog); err != nil {
		return r, err
	}
	if err := r.setupRing(cfg); err != nil {
		return r, err
	}
	if r.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return r, os.NewSyscallError("eventfd", err)
	}
	// Bind last: the protocol of the socket was 0, so nothing was queued
	// before the filter was in place.
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: r.ifindex}
	if err := unix.Bind(r.fd, sa); err != nil {
		if errors.Is(err, unix.ENETDOWN) {
			return r, fmt.Errorf("interface %s is down: %w", device, os.NewSyscallError("bind", err))
		}
		return r, os.NewSyscallError("bind", err)
	}
	return r, nil
}

func socketIn(ns *nsjoin.NS, sockType int) (int, error) {
	fd := -1
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, sockType|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		var nserr *nsjoin.Error
		if errors.As(err, &nserr) {
			return -1, err
		}
		if errors.Is(err, unix.EPERM) {
			return -1, fmt.Errorf("%w (needs CAP_NET_RAW)", os.NewSyscallError("socket AF_PACKET", err))
		}
		return -1, os.NewSyscallError("socket AF_PACKET", err)
	}
	return fd, nil
}

func ifIndex(fd int, name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

// ifUp reports whether the interface is administratively up, asked
// through fd's network namespace.
func ifUp(fd int, name string) (bool, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return false, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return false, err
	}
	return ifr.Uint16()&unix.IFF_UP != 0, nil
}

func ifHWType(fd int, name string) (uint16, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return 0, os.NewSyscallError("ioctl SIOCGIFHWADDR", err)
	}
	return ifr.Uint16(), nil
}

func attachFilter(fd int, prog []insn) error {
	if len(prog) == 0 {
		return errors.New("empty filter program")
	}
	f := make([]unix.SockFilter, len(prog))
	for i, p := range prog {
		f[i] = unix.SockFilter{Code: p.Code, Jt: p.Jt, Jf: p.Jf, K: p.K}
	}
	fp := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
		return os.NewSyscallError("setsockopt SO_ATTACH_FILTER", err)
	}
	return nil
}

// ringGeometry chooses blocks big enough for one snaplen packet (as
// libpcap does) but at most 1 MiB, and at least two of them. Within that,
// blocks are as large as leaves at least four: the reader is woken once
// per block the kernel hands over, so in a flood the block size sets how
// often it parks and wakes (4 × 1 MiB instead of 8 × 512 KiB for the
// default ring took netobs capture from about 0.8× to 0.65× tcpdump's
// CPU on a 64-byte flood).
func ringGeometry(bufferSize, snaplen int) (blockSize, nblocks int) {
	page := os.Getpagesize()
	need := snaplen + tpacket3HdrLen + 32 + 48
	blockSize = page
	for blockSize < need && blockSize < 1<<20 {
		blockSize <<= 1
	}
	for blockSize < 1<<20 && bufferSize/(blockSize*2) >= 4 {
		blockSize <<= 1
	}
	for blockSize > page && bufferSize/blockSize < 2 {
		blockSize >>= 1
	}
	nblocks = bufferSize / blockSize
	if nblocks < 2 {
		nblocks = 2
	}
	return blockSize, nblocks
}

func (r *ring) setupRing(cfg Config) error {
	if err := unix.SetsockoptInt(r.fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return os.NewSyscallError("setsockopt PACKET_VERSION", err)
	}
	r.blockSize, r.nblocks = ringGeometry(cfg.BufferSize, cfg.Snaplen)
	const frameSize = 2048 // unused by TPACKET_V3 beyond the kernel's checks
	req := unix.TpacketReq3{
		Block_size:     uint32(r.blockSize),
		Block_nr:       uint32(r.nblocks),
		Frame_size:     frameSize,
		Frame_nr:       uint32(r.blockSize / frameSize * r.nblocks),
		Retire_blk_tov: uint32(cfg.BlockTimeout / time.Millisecond),
	}
	if err := unix.SetsockoptTpacketReq3(r.fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return os.NewSyscallError("setsockopt PACKET_RX_RING", err)
	}
	mem, err := unix.Mmap(r.fd, 0, r.blockSize*r.nblocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return os.NewSyscallError("mmap packet ring", err)
	}
	r.mem = mem
	return nil
}

// usePoller puts the socket into Go's poller, for wait. Only a lone ring's
// reader waits there: the merged readers wait in poll(2) on all their
// rings at once, and a socket in the poller would wake the poller's
// thread once per block for nothing.
func (r *ring) usePoller() error {
	if err := unix.SetNonblock(r.fd, true); err != nil {
		return os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	r.efdMu.Lock()
	defer r.efdMu.Unlock()
	// From here the file owns fd; close closes it through the file. A
	// wake that came first is seen by wait through woken.
	r.file = os.NewFile(uintptr(r.fd), "packet socket")
	var err error
	r.rc, err = r.file.SyscallConn()
	return err
}

// wake makes the reader drain what is ready and return. Safe to call from
// any goroutine, any number of times, until close.
func (r *ring) wake() {
	r.efdMu.Lock()
	defer r.efdMu.Unlock()
	r.woken.Store(true) // before the deadline: see wait
	if r.file != nil {
		r.file.SetReadDeadline(time.Unix(0, 1))
	}
	if r.efd >= 0 {
		var one = [8]byte{1}
		unix.Write(r.efd, one[:])
	}
}

// close releases the ring; the reader must have returned.
func (r *ring) close() {
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
	r.efdMu.Lock()
	if r.file != nil {
		r.file.Close() // closes fd
		r.file = nil
		r.fd = -1
	}
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
	if r.efd >= 0 {
		unix.Close(r.efd)
		r.efd = -1
	}
	r.efdMu.Unlock()
}

// sink is where a reader delivers packets.
type sink interface {
	packet(r *ring, p *Packet) error
	// blockDone is called after each block's packets, even when one of
	// them failed.
	blockDone(r *ring)
	// idle is called when the ring is empty.
	idle(r *ring) error
}

// read delivers packets until the eventfd fires (after draining the blocks
// ready by then), the sink fails, or the part ends; it returns the reason
// for an early end (ErrNamespaceGone, ErrInterfaceGone) or the sink's
// error.
func (r *ring) read(s sink) error {
	defer r.readStats()
	r.lastStats = time.Now()
	blocks := 0
	var stopAt time.Time
	for {
		bd := r.block()
		if atomic.LoadUint32(&bd.Block_status)&unix.TP_STATUS_USER != 0 {
			err := r.readBlock(bd, s)
			atomic.StoreUint32(&bd.Block_status, unix.TP_STATUS_KERNEL)
			r.cur = (r.cur + 1) % r.nblocks
			if err != nil {
				return err
			}
			if blocks++; blocks%16 == 0 {
				if err := r.periodic(); err != nil {
					return r.endPart(s, err)
				}
			}
			continue
		}
		if err := s.idle(r); err != nil {
			return err
		}
		timeout := pollInterval
		if r.stopping {
			// Packets in the block the kernel is still filling count as
			// received; wait for the block timeout to hand them over, so
			// a stopped capture keeps them.
			if atomic.LoadUint32(&bd.Num_pkts) == 0 || time.Since(stopAt) > 2*r.blockTO+20*time.Millisecond {
				return nil
			}
			timeout = r.blockTO + 10*time.Millisecond
		}
		ready, sockErr, err := r.wait(timeout, !r.stopping)
		if err != nil {
			return err
		}
		if !r.stopping && r.woken.Load() {
			// Drain what is ready now, then return.
			r.stopping = true
			stopAt = time.Now()
			continue
		}
		if sockErr {
			if err := r.socketError(); err != nil {
				return r.endPart(s, err)
			}
		}
		if !ready || time.Since(r.lastStats) >= statsInterval {
			if err := r.periodic(); err != nil {
				return r.endPart(s, err)
			}
		}
	}
}

// wait parks the reader in Go's poller until the kernel hands the current
// block over (ready), the socket has an error pending (sockErr), timeout
// passes, or, if wakeable, wake is called.
//
// wake stores woken before it moves the deadline into the past, and wait
// sets its deadline before it looks at woken, so a wake is never missed:
// either wait sees woken, or wake's deadline comes after wait's.
func (r *ring) wait(timeout time.Duration, wakeable bool) (ready, sockErr bool, err error) {
	if err := r.file.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return false, false, err
	}
	bd := r.block()
	first := true
	err = r.rc.Read(func(fd uintptr) bool {
		if atomic.LoadUint32(&bd.Block_status)&unix.TP_STATUS_USER != 0 {
			ready = true
			return true
		}
		if wakeable && r.woken.Load() {
			return true
		}
		if first {
			first = false
			return false
		}
		// Woken with no block handed over: a readiness left from a
		// block already read, or an error (POLLERR). poll(2) with no
		// timeout tells them apart; made raw, as it cannot block.
		pfd := unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
		unix.RawSyscall(unix.SYS_POLL, uintptr(unsafe.Pointer(&pfd)), 1, 0)
		if pfd.Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			sockErr = true
			return true
		}
		return false
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = nil
	}
	return ready, sockErr, err
}

// endPart drains the ring once more, so what the kernel handed over before
// the part ended is kept, and returns why it ended.
func (r *ring) endPart(s sink, why error) error {
	deadline := time.Now().Add(2*r.blockTO + 20*time.Millisecond)
	for {
		bd := r.block()
		if atomic.LoadUint32(&bd.Block_status)&unix.TP_STATUS_USER == 0 {
			// The block being filled holds packets counted as received:
			// wait for the block timeout to hand it over.
			if atomic.LoadUint32(&bd.Num_pkts) == 0 || time.Now().After(deadline) {
				break
			}
			fds := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}}
			unix.Poll(fds, int(r.blockTO/time.Millisecond)+10)
			continue
		}
		err := r.readBlock(bd, s)
		atomic.StoreUint32(&bd.Block_status, unix.TP_STATUS_KERNEL)
		r.cur = (r.cur + 1) % r.nblocks
		if err != nil {
			return err
		}
	}
	if err := s.idle(r); err != nil {
		return err
	}
	return why
}

// periodic reads the statistics and checks that the namespace and the
// interface are still there.
func (r *ring) periodic() error {
	r.readStats()
	if r.down {
		if err := r.stillThere(); err != nil {
			return err
		}
	}
	if gone, why := r.target.NS.Gone(); gone {
		return fmt.Errorf("%w: %s", ErrNamespaceGone, why)
	}
	return nil
}

func (r *ring) readStats() {
	r.lastStats = time.Now()
	if r.fd < 0 {
		return
	}
	// The kernel's counters are 32 bits and reset on every read; reading
	// at least every second keeps the 64-bit sums exact.
	st, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return
	}
	r.received.Add(uint64(st.Packets))
	r.dropped.Add(uint64(st.Drops))
}

// socketError reads and clears the socket's pending error. ENETDOWN comes
// both when the bound interface goes down (capture resumes when it comes
// back up, so it is ignored) and when it is removed.
func (r *ring) socketError() error {
	soerr, err := unix.GetsockoptInt(r.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return os.NewSyscallError("getsockopt SO_ERROR", err)
	}
	if soerr == 0 {
		return nil
	}
	if unix.Errno(soerr) == unix.ENETDOWN && r.ifindex != 0 {
		// Down, or being removed: the kernel sends no second error when
		// the interface then goes away, so periodic looks again.
		r.down = true
		return r.stillThere()
	}
	return os.NewSyscallError("capture socket", unix.Errno(soerr))
}

// stillThere returns ErrInterfaceGone if the bound interface no longer
// exists, and clears down once it is up again.
func (r *ring) stillThere() error {
	idx, err := ifIndex(r.fd, r.ifc.Device)
	if err != nil || idx != r.ifindex {
		return fmt.Errorf("%w: %s was removed from %s", ErrInterfaceGone, r.ifc.Device, r.ifc.Label)
	}
	if up, err := ifUp(r.fd, r.ifc.Device); err == nil && up {
		r.down = false
	}
	return nil
}

func (r *ring) readBlock(bd *unix.TpacketHdrV1, s sink) error {
	// Offsets count from the start of the block, where the descriptor
	// holding bd starts.
	base := unsafe.Add(unsafe.Pointer(bd), -int(unsafe.Offsetof(unix.TpacketBlockDesc{}.Hdr)))
	off := uintptr(bd.Offset_to_first_pkt)
	n := int(bd.Num_pkts)
	var p Packet
	p.Interface = r.ifc
	cooked := r.ifc.LinkType == LinkLinuxSLL
	for i := 0; i < n; i++ {
		h := (*unix.Tpacket3Hdr)(unsafe.Add(base, off))
		off += uintptr(h.Next_offset)
		sll := (*unix.RawSockaddrLinklayer)(unsafe.Add(unsafe.Pointer(h), tpacket3HdrLen))
		if sll.Pkttype == unix.PACKET_OUTGOING && int(sll.Ifindex) == r.loIndex {
			// Loopback shows each packet twice, outgoing and incoming;
			// keep one, as libpcap does.
			continue
		}
		data := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(h), h.Mac)), h.Snaplen)
		p.Time = int64(h.Sec)*1e9 + int64(h.Nsec)
		p.Length = int(h.Len)
		p.Outgoing = sll.Pkttype == unix.PACKET_OUTGOING
		p.Head = nil
		p.Data = data
		if cooked {
			r.cookedHeader(sll)
			p.Head = r.head[:]
			p.Length += sllHeaderLen
		} else if h.Status&unix.TP_STATUS_VLAN_VALID != 0 && r.ifc.LinkType == LinkEthernet && len(data) >= 12 {
			// The NIC or veth took the VLAN tag off; put it back, as
			// libpcap does, so the frame is what was on the wire.
			tpid := uint16(unix.ETH_P_8021Q)
			if h.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
				tpid = h.Hv1.Vlan_tpid
			}
			copy(r.head[:12], data[:12])
			binary.BigEndian.PutUint16(r.head[12:], tpid)
			binary.BigEndian.PutUint16(r.head[14:], uint16(h.Hv1.Vlan_tci))
			p.Head = r.head[:16]
			p.Data = data[12:]
			p.Length += 4
		}
		if p.CaptureLength() > r.snaplen {
			if len(p.Head) > r.snaplen {
				p.Head = p.Head[:r.snaplen]
			}
			p.Data = p.Data[:r.snaplen-len(p.Head)]
		}
		if err := s.packet(r, &p); err != nil {
			s.blockDone(r)
			return err
		}
	}
	s.blockDone(r)
	return nil
}

// cookedHeader fills r.head with the LINKTYPE_LINUX_SLL header.
func (r *ring) cookedHeader(sll *unix.RawSockaddrLinklayer) {
	h := r.head[:]
	binary.BigEndian.PutUint16(h[0:], uint16(sll.Pkttype))
	binary.BigEndian.PutUint16(h[2:], sll.Hatype)
	halen := int(sll.Halen)
	if halen > 8 {
		halen = 8
	}
	binary.BigEndian.PutUint16(h[4:], uint16(sll.Halen))
	clear(h[6:14])
	copy(h[6:6+halen], sll.Addr[:halen])
	// sll_protocol is in network byte order already.
	*(*uint16)(unsafe.Pointer(&h[14])) = sll.Protocol
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
