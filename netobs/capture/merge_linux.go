package capture

import (
	"os"
	"runtime"
	"sync/atomic"
	"time"

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

// batch carries packets copied out of one ring from the reader to the
// merger, or, with done set, the end of that ring's part.
type batch struct {
	src  int
	pkts []pktMeta
	buf  []byte
	next int // merge position in pkts
	done bool
	err  error
}

// source is one ring as the reader sees it.
type source struct {
	i      int
	r      *ring
	rd     *reader
	cur    *batch // being filled
	ended  bool
	blocks int
}

// packet copies a packet out of the ring, which goes back to the kernel
// right after: a quiet socket may make the merger wait (the hold time), and
// the busy rings must not fill up meanwhile.
func (s *source) packet(r *ring, p *Packet) error {
	if s.cur == nil {
		s.cur = s.rd.get()
		s.cur.src = s.i
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

func (s *source) blockDone(*ring) {} // the merger counts what it delivers

func (s *source) idle(*ring) error {
	s.push()
	return nil
}

// push hands the batch being filled to the merger. It blocks while the
// merger is that far behind; the rings then fill and the kernel counts
// the drops.
func (s *source) push() {
	b := s.cur
	if b == nil || len(b.pkts) == 0 {
		return
	}
	s.cur = nil
	s.rd.out <- b
}

const noPacket = int64(^uint64(0) >> 1)

// reader drains every ring from one goroutine, with one poll(2) for all.
type reader struct {
	c     *Capture
	rings []int // indexes of the rings this reader drains
	out   chan *batch
	free  chan *batch
}

func (rd *reader) get() *batch {
	select {
	case b := <-rd.free:
		return b
	default:
		return &batch{buf: make([]byte, 0, batchBytes+4096), pkts: make([]pktMeta, 0, batchBytes/64)}
	}
}

// runMerged merges the packets of every ring in timestamp order. One
// goroutine reads all rings and copies packets out in batches; this one
// merges and writes. A packet is written once every socket still capturing
// has a packet queued (so nothing earlier can come), or once it is older
// than the hold time, which covers quiet sockets: a packet can surface up
// to two block timeouts late.
func (c *Capture) runMerged(h Handler) error {
	n := len(c.rings)
	// One reader per CPU, each with its share of the rings: under a flood
	// that keeps every CPU busy, the scheduler gives each thread its share,
	// and one thread reading ten rings falls behind where ten tcpdumps
	// would not.
	out, free := make(chan *batch, 4*n+8), make(chan *batch, 4*n+8)
	nr := min(n, runtime.GOMAXPROCS(0))
	for k := 0; k < nr; k++ {
		rd := &reader{c: c, out: out, free: free}
		for i := k; i < n; i += nr {
			rd.rings = append(rd.rings, i)
		}
		c.readers.Add(1)
		go func() {
			defer c.readers.Done()
			rd.run()
		}()
	}
	rd := &reader{out: out, free: free}

	queues := make([][]*batch, n)
	ended := make([]bool, n)
	heads := make([]int64, n) // each queue's first packet time, for a flat scan
	for i := range heads {
		heads[i] = noPacket
	}
	live := n
	hold := c.hold().Nanoseconds()
	var herr, firstErr error
	lastFlush := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	put := func(b *batch) {
		b.pkts, b.buf, b.next = b.pkts[:0], b.buf[:0], 0
		select {
		case rd.free <- b:
		default:
		}
	}
	head := func(i int) int64 {
		if len(queues[i]) == 0 {
			return noPacket
		}
		q := queues[i][0]
		return q.pkts[q.next].time
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
					if t == noPacket && !ended[i] {
						blocked = true
						break
					}
				}
				if blocked {
					wait = time.Duration(bestT + hold - tnow)
					break
				}
			}
			b := queues[best][0]
			pm := &b.pkts[b.next]
			hl, dl, off := int(pm.headLen), int(pm.dataLen), int(pm.off)
			p = Packet{Interface: c.ifcs[best], Time: pm.time, Length: int(pm.length), Outgoing: pm.outgoing,
				Head: b.buf[off : off+hl], Data: b.buf[off+hl : off+hl+dl]}
			err := h.Packet(&p)
			if err == nil || err == ErrStop {
				c.rings[best].captured.Add(1)
			}
			if err != nil {
				return 0, err
			}
			wrote = true
			if b.next++; b.next == len(b.pkts) {
				queues[best] = queues[best][1:]
				put(b)
			}
			heads[best] = head(best)
		}
		if wrote && (wait == 0 || time.Since(lastFlush) >= c.cfg.BlockTimeout) {
			lastFlush = time.Now()
			return wait, h.Flush()
		}
		return wait, nil
	}

	for live > 0 {
		var wait time.Duration
		if herr == nil {
			wait, herr = emit(false)
			if herr != nil {
				// Stop the reader; what it still sends is discarded.
				c.discard.Store(true)
				c.wakeAll()
			}
		}
		var tc <-chan time.Time
		if herr == nil && wait > 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case b := <-rd.out:
			if b.done {
				live--
				ended[b.src] = true
				if isPartEnd(b.err) {
					h.Ended(c.ifcs[b.src], b.err)
				} else if b.err != nil && firstErr == nil {
					firstErr = wrap("capture", c.ifcs[b.src].Name, b.err)
				}
				continue
			}
			if herr != nil {
				put(b)
				continue
			}
			queues[b.src] = append(queues[b.src], b)
			if len(queues[b.src]) == 1 {
				heads[b.src] = head(b.src)
			}
		case <-tc:
		}
		timer.Stop()
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

// run reads every ring until the capture is stopped or every part ended,
// then reports each ring's end to the merger.
func (rd *reader) run() {
	c := rd.c
	n := len(rd.rings)
	srcs := make([]*source, n)
	now := time.Now()
	for k, i := range rd.rings {
		srcs[k] = &source{i: i, r: c.rings[i], rd: rd}
		c.rings[i].lastStats = now
	}
	live := n
	stopping := false
	var stopAt time.Time

	endSource := func(i int, err error) {
		s := srcs[i]
		if s.ended {
			return
		}
		s.ended = true
		live--
		s.push()
		s.r.readStats()
		if isPartEnd(err) {
			s.r.close() // the socket holds the namespace alive
		}
		rd.out <- &batch{src: s.i, done: true, err: err}
	}
	// drain copies every ready block of ring i out and gives it back.
	drain := func(i int) {
		s := srcs[i]
		r := s.r
		for !s.ended {
			bd := r.block()
			if atomic.LoadUint32(&bd.Block_status)&unix.TP_STATUS_USER == 0 {
				break
			}
			r.readBlock(bd, s) // a source never fails a packet
			atomic.StoreUint32(&bd.Block_status, unix.TP_STATUS_KERNEL)
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
	}

	fds := make([]unix.PollFd, n+1)
	for live > 0 {
		for i := range srcs {
			drain(i)
		}
		timeout := pollInterval
		if stopping {
			// Packets in the blocks the kernel is still filling count as
			// received; wait for the block timeout to hand them over.
			pending := false
			if !c.discard.Load() && time.Since(stopAt) <= 2*c.cfg.BlockTimeout+20*time.Millisecond {
				for _, s := range srcs {
					if s.ended {
						continue
					}
					bd := s.r.block()
					if atomic.LoadUint32(&bd.Num_pkts) != 0 {
						pending = true
					}
				}
			}
			if !pending {
				for i := range srcs {
					endSource(i, nil)
				}
				return
			}
			timeout = c.cfg.BlockTimeout + 10*time.Millisecond
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
			for i := range srcs {
				endSource(i, os.NewSyscallError("poll", err))
			}
			return
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
}
