package capture

import (
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchBytes is how many packet bytes are gathered in one batch.
const batchBytes = 256 << 10

type pktMeta struct {
	time     int64
	length   int32
	off      int32
	headLen  int32
	dataLen  int32
	outgoing bool
}

// batch holds packets copied out of one ring, waiting to be merged.
type batch struct {
	pkts []pktMeta
	buf  []byte
	next int // merge position in pkts
}

// source is one ring as the merger sees it.
type source struct {
	r      *ring
	m      *merger
	cur    *batch   // being filled
	queue  []*batch // filled, oldest first
	ended  bool
	blocks int
}

// packet copies a packet out of the ring, which goes back to the kernel
// right after: a quiet socket may make the merger wait (the hold time), and
// the busy rings must not fill up meanwhile.
func (s *source) packet(r *ring, p *Packet) error {
	if s.cur == nil {
		s.cur = s.m.get()
	}
	b := s.cur
	off := len(b.buf)
	b.buf = append(b.buf, p.Head...)
	b.buf = append(b.buf, p.Data...)
	b.pkts = append(b.pkts, pktMeta{time: p.Time, length: int32(p.Length), off: int32(off),
		headLen: int32(len(p.Head)), dataLen: int32(len(p.Data)), outgoing: p.Outgoing})
	if len(b.buf) >= batchBytes {
		s.push()
	}
	return nil
}

func (s *source) idle(*ring) error {
	s.push()
	return nil
}

// push queues the batch being filled.
func (s *source) push() {
	b := s.cur
	if b == nil || len(b.pkts) == 0 {
		return
	}
	s.cur = nil
	s.queue = append(s.queue, b)
}

// head is the time of the first queued packet, or noPacket.
func (s *source) head() int64 {
	if len(s.queue) == 0 {
		return noPacket
	}
	q := s.queue[0]
	return q.pkts[q.next].time
}

const noPacket = int64(^uint64(0) >> 1)

type merger struct {
	free []*batch
}

func (m *merger) get() *batch {
	if n := len(m.free); n > 0 {
		b := m.free[n-1]
		m.free = m.free[:n-1]
		return b
	}
	return &batch{buf: make([]byte, 0, batchBytes+4096), pkts: make([]pktMeta, 0, batchBytes/64)}
}

func (m *merger) put(b *batch) {
	b.pkts, b.buf, b.next = b.pkts[:0], b.buf[:0], 0
	if len(m.free) < 64 {
		m.free = append(m.free, b)
	}
}

// runMerged reads every ring from this one goroutine, with one poll(2) for
// all of them, and merges their packets in timestamp order. A packet is
// written once every socket still capturing has a packet queued (so nothing
// earlier can come), or once it is older than the hold time, which covers
// quiet sockets: a packet can surface up to two block timeouts late.
func (c *Capture) runMerged(h Handler) error {
	n := len(c.rings)
	m := &merger{}
	srcs := make([]*source, n)
	heads := make([]int64, n) // flat copy of each source's head, for the scan
	now := time.Now()
	for i, r := range c.rings {
		srcs[i] = &source{r: r, m: m}
		heads[i] = noPacket
		r.lastStats = now
	}
	hold := c.hold().Nanoseconds()
	live := n
	var herr, firstErr error
	stopping := false
	var stopAt time.Time
	lastFlush := now

	endSource := func(i int, err error) {
		s := srcs[i]
		if s.ended {
			return
		}
		s.ended = true
		live--
		s.push()
		heads[i] = s.head()
		s.r.readStats()
		switch {
		case isPartEnd(err):
			s.r.close() // the socket holds the namespace alive
			h.Ended(c.ifcs[i], err)
		case err != nil && firstErr == nil:
			firstErr = wrap("capture", c.ifcs[i].Name, err)
		}
	}
	// drain moves every ready block of ring i into its queue.
	drain := func(i int) {
		s := srcs[i]
		r := s.r
		for !s.ended {
			bd := (*blockDesc)(unsafe.Pointer(&r.mem[r.cur*r.blockSize]))
			if atomic.LoadUint32(&bd.Status)&tpStatusUser == 0 {
				break
			}
			r.readBlock(bd, s) // a source never fails a packet
			atomic.StoreUint32(&bd.Status, tpStatusKernel)
			r.cur = (r.cur + 1) % r.nblocks
			if s.blocks++; s.blocks%16 == 0 {
				if err := r.periodic(); err != nil {
					endSource(i, r.endPart(s, err))
				}
			}
		}
		if !s.ended {
			s.push()
		}
		heads[i] = s.head()
	}
	// emit writes the packets that can be written; with all set, every
	// queued one. It returns how long until the next may become writable.
	emit := func(all bool) (wait time.Duration, err error) {
		tnow := time.Now().UnixNano()
		wrote := false
		var p Packet
		for {
			best, bestT := -1, noPacket
			for i, t := range heads {
				if t < bestT || (best < 0 && t != noPacket) {
					best, bestT = i, t
				}
			}
			if best < 0 {
				break
			}
			if !all && bestT > tnow-hold {
				blocked := false
				for i, t := range heads {
					if t == noPacket && !srcs[i].ended {
						blocked = true
						break
					}
				}
				if blocked {
					wait = time.Duration(bestT + hold - tnow)
					break
				}
			}
			s := srcs[best]
			b := s.queue[0]
			pm := &b.pkts[b.next]
			hl, dl := int(pm.headLen), int(pm.dataLen)
			off := int(pm.off)
			p = Packet{Interface: c.ifcs[best], Time: pm.time, Length: int(pm.length), Outgoing: pm.outgoing,
				Head: b.buf[off : off+hl], Data: b.buf[off+hl : off+hl+dl]}
			err := h.Packet(&p)
			if err == nil || err == ErrStop {
				s.r.captured.Add(1)
			}
			if err != nil {
				return 0, err
			}
			wrote = true
			if b.next++; b.next == len(b.pkts) {
				s.queue = s.queue[1:]
				m.put(b)
			}
			heads[best] = s.head()
		}
		if wrote && (wait == 0 || time.Since(lastFlush) >= c.cfg.BlockTimeout) {
			lastFlush = time.Now()
			return wait, h.Flush()
		}
		return wait, nil
	}

	fds := make([]unix.PollFd, n+1)
	for live > 0 {
		for i := range srcs {
			drain(i)
		}
		var wait time.Duration
		if herr == nil {
			wait, herr = emit(false)
			if herr != nil && !stopping {
				// Stop reading; what is queued is discarded.
				stopping, stopAt = true, time.Now()
			}
		}
		timeout := pollInterval
		if stopping {
			// Packets in the blocks the kernel is still filling count as
			// received; wait for the block timeout to hand them over.
			pending := false
			if herr == nil && time.Since(stopAt) <= 2*c.cfg.BlockTimeout+20*time.Millisecond {
				for _, s := range srcs {
					if s.ended {
						continue
					}
					bd := (*blockDesc)(unsafe.Pointer(&s.r.mem[s.r.cur*s.r.blockSize]))
					if atomic.LoadUint32(&bd.NumPkts) != 0 {
						pending = true
					}
				}
			}
			if !pending {
				for i := range srcs {
					endSource(i, nil)
				}
				break
			}
			timeout = c.cfg.BlockTimeout + 10*time.Millisecond
		}
		if wait > 0 && wait < timeout {
			timeout = wait + time.Millisecond
		}
		for i, s := range srcs {
			fds[i] = unix.PollFd{Fd: -1}
			if !s.ended {
				fds[i] = unix.PollFd{Fd: int32(s.r.fd), Events: unix.POLLIN}
			}
		}
		fds[n] = unix.PollFd{Fd: int32(c.efd), Events: unix.POLLIN}
		if stopping {
			fds[n].Fd = -1 // it stays readable
		}
		nready, err := unix.Poll(fds, int(timeout/time.Millisecond))
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			if firstErr == nil {
				firstErr = wrap("capture", "", os.NewSyscallError("poll", err))
			}
			for i := range srcs {
				endSource(i, nil)
			}
			break
		}
		if fds[n].Revents&unix.POLLIN != 0 && !stopping {
			stopping, stopAt = true, time.Now()
		}
		for i, s := range srcs {
			if s.ended {
				continue
			}
			r := s.r
			if fds[i].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
				if err := r.socketError(); err != nil {
					endSource(i, r.endPart(s, err))
					continue
				}
			}
			if nready == 0 || time.Since(r.lastStats) >= statsInterval {
				if err := r.periodic(); err != nil {
					endSource(i, r.endPart(s, err))
				}
			}
		}
	}
	if herr == nil {
		_, herr = emit(true)
	}
	if ferr := h.Flush(); herr == nil {
		herr = ferr
	}
	if herr != nil {
		return herr
	}
	return firstErr
}
