package tapdev

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/netobs/netobs/internal/nlwire"
	"github.com/netobs/netobs/nsjoin"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Device is a TUN or TAP device in a network namespace, read and written
// from the host through its queues. A Device is safe for concurrent use;
// each Queue may have one reader and one writer at a time.
type Device struct {
	kind    Kind
	name    string
	index   int
	ns      string // the namespace's kernel name, net:[4026532...]
	nsID    nsjoin.ID
	ref     string
	persist bool
	queues  []*Queue
	// filterEBPF: the device discards through an eBPF filter (a TUN
	// device with Config.Discard), which Close detaches.
	filterEBPF bool
	filterID   uint32 // the kernel's ID of that filter's program

	mu     sync.Mutex      // guards h, tc, mirror and closed
	h      *netlink.Handle // bound to the target namespace; nil once closed
	tc     *tcSock         // tc filter requests in the target, if mirroring
	stats  int             // netlink socket of the namespace for Stats, -1 once closed; guarded by mu
	mirror *mirrorRules    // tc rules Create added, nil if none
	closed bool
}

// Queue is one file descriptor of a device. Reading returns one frame the
// namespace sent through the device; writing delivers one frame to the
// namespace as if the device had received it.
type Queue struct {
	f  *os.File // non-blocking, in Go's poller; never call f.Fd()
	rc syscall.RawConn

	ringMu sync.Mutex // guards ring, noRing and closed
	ring   *uring     // batch reader, made by the first ReadBatch
	wring  *uring     // batch writer, made by the first WriteBatch
	noRing bool       // io_uring unavailable: read(2) and write(2)
	closed bool
	want   int // adaptive batch size, used only by the reader
}

// close closes the descriptor, waiting for a ReadBatch in progress to
// leave it, then the ring.
func (q *Queue) close() error {
	err := q.f.Close()
	q.ringMu.Lock()
	defer q.ringMu.Unlock()
	q.closed = true
	for _, r := range []**uring{&q.ring, &q.wring} {
		if *r != nil {
			(*r).close()
			*r = nil
		}
	}
	return err
}

// createMu serialises Create in this process, so that two mirrors of one
// interface choose their filter priorities one after the other.
var createMu sync.Mutex

// Create makes a device as cfg describes inside the network namespace ns
// and configures it there. ns stays owned by the caller and may be closed
// once Create returns: the device's descriptors keep the namespace alive.
// On error nothing Create added is left in the namespace.
func Create(ns *nsjoin.NS, cfg Config) (*Device, error) {
	d, err := create(ns, cfg)
	if err != nil {
		what := cfg.Kind.String()
		if cfg.Name != "" {
			what += " " + cfg.Name
		}
		return nil, fmt.Errorf("create %s in %s: %w", what, ns.Ref(), err)
	}
	return d, nil
}

func create(ns *nsjoin.NS, cfg Config) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ns.Type() != nsjoin.Net {
		return nil, fmt.Errorf("%w: %s is a %s namespace, not net", nsjoin.ErrWrongType, ns.Ref(), ns.Type())
	}
	nq := cfg.Queues
	if nq == 0 {
		nq = 1
	}
	d := &Device{kind: cfg.Kind, ns: ns.String(), nsID: ns.ID(), ref: ns.Ref(), persist: cfg.Persist, stats: -1}
	prog := -1
	if cfg.Discard && cfg.Kind == TUN {
		// Loaded here, outside the target (a program belongs to no
		// namespace), before anything is created: a process that may not
		// load it is told so with nothing to undo.
		var err error
		if prog, err = loadDiscardProg(); err != nil {
			return nil, fmt.Errorf("discard transmitted frames: %w", err)
		}
		if d.filterID, err = progID(prog); err != nil {
			unix.Close(prog)
			return nil, fmt.Errorf("discard transmitted frames: %w", err)
		}
		// The device holds its own reference once the filter is attached.
		defer unix.Close(prog)
	}

	createMu.Lock()
	defer createMu.Unlock()
	err := ns.Do(func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		d.h = h
		// Connected to the kernel: no process of the target can make the
		// handle's requests (tc rule removal among them) fail.
		if err := nlwire.ConnectHandle(h); err != nil {
			return err
		}
		// The netlink library's requests fail on any datagram a process
		// of the namespace sends them; Stats, which attach polls, reads
		// its own socket and drops what is not from the kernel.
		if d.stats, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE); err != nil {
			d.stats = -1
			return os.NewSyscallError("socket", err)
		}
		if cfg.Mirror != "" {
			if d.tc, err = openTC(); err != nil {
				return fmt.Errorf("netlink socket: %w", err)
			}
		}
		if cfg.Mirror != "" {
			if _, err := h.LinkByName(cfg.Mirror); err != nil {
				if isNotFound(err) {
					return fmt.Errorf("mirror %s: no such interface in %s", cfg.Mirror, d.ns)
				}
				return fmt.Errorf("mirror %s: %w", cfg.Mirror, err)
			}
		}
		name := cfg.Name
		for i := 0; i < nq; i++ {
			// The first queue makes the device and must not attach to
			// an existing one (IFF_TUN_EXCL); the others attach to it.
			q, got, err := openQueue(cfg.Kind, name, nq > 1, i == 0)
			if errors.Is(err, ErrExists) {
				return fmt.Errorf("%w: %s is already in %s", ErrExists, name, d.ns)
			}
			if err != nil {
				if i > 0 {
					return fmt.Errorf("queue %d: %w", i, err)
				}
				return err
			}
			d.queues = append(d.queues, q)
			name = got
		}
		d.name = name
		return nil
	})
	if err != nil {
		d.undo()
		return nil, err
	}
	if err := d.setupStats(); err != nil {
		d.undo()
		return nil, err
	}
	if err := d.configure(cfg, prog); err != nil {
		d.undo()
		return nil, fmt.Errorf("configure %s: %w", d.name, err)
	}
	return d, nil
}

func hasPattern(name string) bool {
	for i := 0; i+1 < len(name); i++ {
		if name[i] == '%' && name[i+1] == 'd' {
			return true
		}
	}
	return false
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// openQueue opens /dev/net/tun on the calling thread, which Create runs
// inside the target namespace, and makes it a queue of the device name
// (TUNSETIFF): a new device if excl (IFF_TUN_EXCL: an existing device of
// that name is an error, not something to attach to), else the existing
// multiqueue device. The descriptor is close-on-exec and non-blocking
// from the start, before it is wrapped in an *os.File.
func openQueue(kind Kind, name string, multi, excl bool) (*Queue, string, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, "", tunError("open /dev/net/tun", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if kind == TUN {
		flags = unix.IFF_TUN | unix.IFF_NO_PI
	}
	if multi {
		flags |= unix.IFF_MULTI_QUEUE
	}
	if excl {
		flags |= unix.IFF_TUN_EXCL
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if excl && errors.Is(err, unix.EBUSY) {
			return nil, "", fmt.Errorf("%w: %w", ErrExists, os.NewSyscallError("ioctl TUNSETIFF", err))
		}
		return nil, "", tunError("ioctl TUNSETIFF", err)
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	q := &Queue{f: f}
	if q.rc, err = f.SyscallConn(); err != nil {
		f.Close()
		return nil, "", err
	}
	return q, ifr.Name(), nil
}

// tunError names the call that failed and the capability or module that
// is usually missing.
func tunError(call string, err error) error {
	se := os.NewSyscallError(call, err)
	switch {
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w (needs CAP_NET_ADMIN)", se)
	case call == "open /dev/net/tun" && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO)):
		return fmt.Errorf("%w (no TUN/TAP support: modprobe tun, or mount /dev/net/tun into this mount namespace)", se)
	case errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%w: %w", ErrExists, se)
	}
	return se
}

// configure sets the device up as cfg says; prog is the discard program
// of a TUN device with Discard, else -1.
func (d *Device) configure(cfg Config, prog int) error {
	h := d.h
	link, err := h.LinkByName(d.name)
	if err != nil {
		return fmt.Errorf("look up: %w", err)
	}
	d.index = link.Attrs().Index
	if cfg.TxQueueLen > 0 {
		if err := h.LinkSetTxQLen(link, cfg.TxQueueLen); err != nil {
			return fmt.Errorf("set txqueuelen %d: %w", cfg.TxQueueLen, err)
		}
	}
	if cfg.MTU > 0 {
		if err := h.LinkSetMTU(link, cfg.MTU); err != nil {
			return fmt.Errorf("set mtu %d: %w", cfg.MTU, err)
		}
	}
	if cfg.MAC != nil {
		if err := h.LinkSetHardwareAddr(link, cfg.MAC); err != nil {
			return fmt.Errorf("set mac %s: %w", cfg.MAC, err)
		}
	}
	if cfg.Discard {
		// Before the device goes up, so that no frame is queued.
		var err error
		if prog >= 0 {
			if err = d.queues[0].setFilterEBPF(prog); err == nil {
				d.filterEBPF = true
			}
		} else {
			err = d.queues[0].discard()
		}
		if err != nil {
			return fmt.Errorf("discard transmitted frames: %w", err)
		}
	}
	if cfg.BeforeUp != nil {
		if err := cfg.BeforeUp(d); err != nil {
			return err
		}
	}
	for _, p := range cfg.Addrs {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			// Usable at once: duplicate address detection would hold a
			// fresh address back for a second or more.
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, a); err != nil {
			return fmt.Errorf("add address %s: %w", p, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	for _, p := range cfg.Routes {
		p = p.Masked()
		r := &netlink.Route{LinkIndex: d.index, Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if err := h.RouteAdd(r); err != nil {
			return fmt.Errorf("add route %s: %w", p, err)
		}
	}
	if cfg.Mirror != "" {
		if cfg.Mirror == d.name {
			return fmt.Errorf("%w: cannot mirror %s into itself", ErrInvalid, d.name)
		}
		m, err := addMirror(h, d.tc, cfg.Mirror, d.index)
		if m != nil {
			d.mirror = m
		}
		if err != nil {
			return fmt.Errorf("mirror %s: %w", cfg.Mirror, err)
		}
	}
	if cfg.Persist {
		if err := d.queues[0].ioctl(unix.TUNSETPERSIST, 1); err != nil {
			return fmt.Errorf("set persist: %w", err)
		}
	}
	return nil
}

func (q *Queue) ioctl(req uint, arg int) error {
	var serr error
	err := q.rc.Control(func(fd uintptr) { serr = unix.IoctlSetInt(int(fd), req, arg) })
	if err != nil {
		return err
	}
	return os.NewSyscallError("ioctl", serr)
}

// tunAttachFilter is TUNATTACHFILTER, _IOW('T', 213, struct sock_fprog):
// TUNSETIFF's direction bits (they differ between architectures) with
// this request's size and number.
var tunAttachFilter = uint(unix.TUNSETIFF)&^(0x1fff<<16|0xff) | uint(unsafe.Sizeof(unix.SockFprog{}))<<16 | 213

// discard attaches a classic BPF program that accepts nothing to the
// device: the kernel applies it to every queue, those attached later
// included, and runs it in the device's transmit routine, after the
// packet taps and before the frame is queued.
func (q *Queue) discard() error {
	prog := [1]unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	fp := unix.SockFprog{Len: 1, Filter: &prog[0]}
	var errno syscall.Errno
	err := q.rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uintptr(tunAttachFilter), uintptr(unsafe.Pointer(&fp)))
	})
	if err != nil {
		return err
	}
	if errno != 0 {
		return os.NewSyscallError("ioctl TUNATTACHFILTER", errno)
	}
	return nil
}

// undo releases what a failed Create made, persistent or not.
func (d *Device) undo() {
	if d.h != nil && d.mirror != nil {
		d.mirror.remove(d.h, d.tc)
	}
	d.tc.close()
	for _, q := range d.queues {
		q.ioctl(unix.TUNSETPERSIST, 0)
		q.close()
	}
	if d.h != nil {
		d.h.Close()
	}
	d.closeStats()
}

// Close removes the tc rules Create added, closes the queues (the kernel
// then deletes the device unless it is persistent) and releases the
// netlink socket. Pending reads and writes return an error wrapping
// os.ErrClosed. Close is idempotent; later calls return nil.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	if d.mirror != nil {
		if err := d.mirror.remove(d.h, d.tc); err != nil {
			errs = append(errs, err)
		}
		d.mirror = nil
	}
	d.tc.close()
	if d.filterEBPF {
		// Released with the device anyway; detached first so that the
		// kernel frees the program (after an RCU grace period) even while
		// something else still holds the device.
		if err := d.queues[0].setFilterEBPF(-1); err != nil && !errors.Is(err, unix.EBADFD) {
			errs = append(errs, fmt.Errorf("detach discard filter: %w", err))
		}
		d.filterEBPF = false
	}
	for _, q := range d.queues {
		if err := q.close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	d.h.Close()
	d.h = nil
	d.closeStats()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close %s in %s: %w", d.name, d.ref, err)
	}
	return nil
}

// Name returns the device's name in the target namespace.
func (d *Device) Name() string { return d.name }

// Index returns the device's interface index in the target namespace.
func (d *Device) Index() int { return d.index }

// Kind returns TAP or TUN.
func (d *Device) Kind() Kind { return d.kind }

// Namespace returns the kernel's name of the namespace the device is in,
// like net:[4026532281].
func (d *Device) Namespace() string { return d.ns }

// NamespaceID returns the identity of the namespace the device is in.
func (d *Device) NamespaceID() nsjoin.ID { return d.nsID }

// Persistent reports whether the device outlives Close.
func (d *Device) Persistent() bool { return d.persist }

// Queues returns the device's queues; a device that is not multiqueue
// has exactly one.
func (d *Device) Queues() []*Queue { return d.queues }

// Read reads one frame from the first queue.
func (d *Device) Read(b []byte) (int, error) { return d.queues[0].Read(b) }

// Write writes one frame through the first queue.
func (d *Device) Write(b []byte) (int, error) { return d.queues[0].Write(b) }

// Mirroring returns the interface whose traffic is mirrored into the
// device, or "" if none.
func (d *Device) Mirroring() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mirror == nil {
		return ""
	}
	return d.mirror.link.Attrs().Name
}

// MirrorGone reports whether the interface Create mirrors into the device
// has been deleted from the namespace (the kernel removed the mirror's tc
// rules with it). It is false for a device that mirrors nothing, and once
// the device is closed.
func (d *Device) MirrorGone() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.mirror == nil {
		return false
	}
	_, err := d.h.LinkByIndex(d.mirror.link.Attrs().Index)
	return isNotFound(err)
}

// Read reads one frame into b. A frame longer than b is truncated.
func (q *Queue) Read(b []byte) (int, error) { return q.f.Read(b) }

// Write writes one frame.
func (q *Queue) Write(b []byte) (int, error) { return q.f.Write(b) }

// ReadBatch waits for at least one frame, then reads as many as are
// queued, up to len(bufs), one per buffer, storing their lengths in
// sizes; it may reorder the buffers in bufs. A batch costs one
// io_uring_enter where io_uring is available (else one read(2) per
// frame), and one poller round trip instead of one per frame. One
// goroutine at a time may call ReadBatch on a queue.
func (q *Queue) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	return q.readBatch(bufs, sizes, true)
}

// TryReadBatch is ReadBatch without the wait: it returns 0 and no error
// when no frame is queued. It drains a queue after a reader has stopped.
func (q *Queue) TryReadBatch(bufs [][]byte, sizes []int) (int, error) {
	return q.readBatch(bufs, sizes, false)
}

func (q *Queue) readBatch(bufs [][]byte, sizes []int, wait bool) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	r := q.uring(&q.ring, len(bufs))
	if q.want == 0 {
		q.want = 4
	}
	n := 0
	var rerr error
	err := q.rc.Read(func(fd uintptr) bool {
		if r != nil {
			k := q.want
			if k > len(bufs) {
				k = len(bufs)
			}
			n, rerr = r.read(int(fd), bufs, sizes, k)
			switch {
			case n == 0 && (errors.Is(rerr, unix.EOPNOTSUPP) || errors.Is(rerr, unix.EINVAL)):
				// EOPNOTSUPP: the kernel refuses RWF_NOWAIT on this file;
				// without it a read would wait in the kernel, out of
				// Close's reach. EINVAL: a kernel before 5.6, without
				// IORING_OP_READ. read(2) from now on.
				q.setNoRing()
				r, rerr = nil, nil
			case n == 0 && errors.Is(rerr, errNotTaken):
				// The ring took no request this time: read(2) this time.
				r, rerr = nil, nil
			}
			// Grow the batch while it comes back full, shrink it to what
			// arrives: a read that finds nothing costs kernel time too.
			switch {
			case n == k:
				q.want = 2 * k
			case n+2 < q.want:
				q.want = max(n+2, 4)
			}
			if r != nil {
				return n > 0 || rerr != nil || !wait
			}
		}
		for n < len(bufs) {
			m, err := unix.Read(int(fd), bufs[n])
			switch {
			case err == nil:
				sizes[n] = m
				n++
			case err == unix.EINTR:
			case err == unix.EAGAIN:
				return n > 0 || !wait
			default:
				rerr = os.NewSyscallError("read", err)
				return true
			}
		}
		return true
	})
	if n > 0 {
		return n, nil
	}
	if err != nil {
		return 0, err
	}
	return 0, rerr
}

// uring returns the queue's ring, making it on first use, or nil if
// io_uring is unavailable (or disabled with NETOBS_NO_IO_URING=1).
func (q *Queue) uring(ring **uring, batch int) *uring {
	q.ringMu.Lock()
	defer q.ringMu.Unlock()
	if q.noRing || q.closed {
		return nil
	}
	if *ring != nil {
		return *ring
	}
	if os.Getenv("NETOBS_NO_IO_URING") == "1" {
		q.noRing = true
		return nil
	}
	entries := uint32(1)
	for int(entries) < batch && entries < 256 {
		entries <<= 1
	}
	r, err := newUring(entries)
	if err != nil {
		q.noRing = true
		return nil
	}
	*ring = r
	return r
}

// WriteBatch writes frames, one frame per element, in order: a batch of up
// to 64 costs one io_uring_enter where io_uring is available. A frame the
// kernel refuses (too short, too long) is skipped; WriteBatch returns how
// many frames were written and the first error. One goroutine at a time
// may call WriteBatch on a queue.
func (q *Queue) WriteBatch(frames [][]byte) (int, error) {
	written := 0
	var first error
	// write writes one frame through the poller, which waits for room.
	write := func(f []byte) error {
		_, err := q.f.Write(f)
		if err == nil {
			written++
		} else if !errors.Is(err, os.ErrClosed) {
			first = cmp.Or(first, err)
			err = nil
		}
		return err
	}
	for len(frames) > 0 {
		k := min(len(frames), 64)
		r := q.uring(&q.wring, 64)
		var res [256]int32
		var derr error
		if r != nil {
			err := q.rc.Write(func(fd uintptr) bool {
				k, derr = r.do(uringOps.write, int(fd), frames, k, &res)
				return true
			})
			if err == nil && errors.Is(derr, errNotTaken) {
				// The ring took no request this time: write(2) this time.
				r, k = nil, min(len(frames), 64)
			} else if err = cmp.Or(err, derr); err != nil {
				return written, err
			}
		}
		if r == nil {
			for _, f := range frames[:k] {
				if err := write(f); err != nil {
					return written, err
				}
			}
			frames = frames[k:]
			continue
		}
		for i := 0; i < k; i++ {
			switch e := unix.Errno(-res[i]); {
			case res[i] >= 0:
				written++
			case e == unix.EAGAIN || e == unix.EOPNOTSUPP || e == unix.EINVAL:
				// EAGAIN: the device is full for now. EOPNOTSUPP: the
				// kernel refuses RWF_NOWAIT on this file. EINVAL: a
				// kernel before 5.6, without IORING_OP_WRITE, or a frame
				// the device refuses; write(2) tells which.
				before := written
				if err := write(frames[i]); err != nil {
					return written, err
				}
				if e != unix.EAGAIN && written > before {
					q.setNoRing()
				}
			default:
				first = cmp.Or(first, error(os.NewSyscallError("write", e)))
			}
		}
		frames = frames[k:]
	}
	return written, first
}

// WritesUring reports whether WriteBatch writes through io_uring: false
// before the first WriteBatch, once io_uring was found unavailable or
// disabled (WriteBatch then makes one write(2) per frame), and after
// Close.
func (q *Queue) WritesUring() bool {
	q.ringMu.Lock()
	defer q.ringMu.Unlock()
	return q.wring != nil && !q.noRing
}

// setNoRing makes the queue use read(2) and write(2) from now on.
func (q *Queue) setNoRing() {
	q.ringMu.Lock()
	q.noRing = true
	q.ringMu.Unlock()
}

// SetReadDeadline makes pending and future reads fail with an error
// wrapping os.ErrDeadlineExceeded after t; the zero time clears it. It
// stops a reader without closing the device.
func (q *Queue) SetReadDeadline(t time.Time) error { return q.f.SetReadDeadline(t) }
