package capture

import (
	"errors"
	"time"
)

// batchBytes is how many packet bytes a reader gathers before handing them
// to the merger.
const batchBytes = 256 << 10

type pktMeta struct {
	time     int64
	length   int
	off      int
	headLen  int32
	dataLen  int32
	outgoing bool
}

// batch carries copied packets from one reader to the merger, or, with
// done set, the reader's end.
type batch struct {
	src  int
	pkts []pktMeta
	buf  []byte
	next int // merger's read position in pkts
	done bool
	err  error
}

// copier is the sink of each reader when several sockets are merged: the
// ring must be given back to the kernel, so packets are copied out.
type copier struct {
	src  int
	out  chan<- *batch
	free chan *batch
	cur  *batch
}

func (cp *copier) packet(r *ring, p *Packet) error {
	if cp.cur == nil {
		select {
		case cp.cur = <-cp.free:
		default:
			cp.cur = &batch{buf: make([]byte, 0, batchBytes+4096), pkts: make([]pktMeta, 0, batchBytes/64)}
		}
		cp.cur.src = cp.src
	}
	b := cp.cur
	off := len(b.buf)
	b.buf = append(b.buf, p.Head...)
	b.buf = append(b.buf, p.Data...)
	b.pkts = append(b.pkts, pktMeta{time: p.Time, length: p.Length, off: off,
		headLen: int32(len(p.Head)), dataLen: int32(len(p.Data)), outgoing: p.Outgoing})
	if len(b.buf) >= batchBytes {
		cp.send()
	}
	return nil
}

func (cp *copier) idle(*ring) error {
	if cp.cur != nil && len(cp.cur.pkts) > 0 {
		cp.send()
	}
	return nil
}

func (cp *copier) send() {
	cp.out <- cp.cur
	cp.cur = nil
}

// runMerged reads every ring on its own goroutine and merges the packets in
// timestamp order. A packet is written once every socket still capturing
// has something queued (so nothing earlier can come), or once it is older
// than the hold time, which covers quiet sockets.
func (c *Capture) runMerged(h Handler) error {
	n := len(c.rings)
	ch := make(chan *batch, 2*n+4)
	free := make(chan *batch, 2*n+4)
	for i, r := range c.rings {
		c.readers.Add(1)
		go func() {
			defer c.readers.Done()
			cp := &copier{src: i, out: ch, free: free}
			err := r.read(cp)
			cp.idle(r)
			ch <- &batch{src: i, done: true, err: err}
		}()
	}

	queues := make([][]*batch, n)
	ended := make([]bool, n)
	// heads[s] is the time of source s's first queued packet, or noPacket:
	// the scan for the earliest packet reads one flat array.
	const noPacket = int64(^uint64(0) >> 1)
	heads := make([]int64, n)
	for i := range heads {
		heads[i] = noPacket
	}
	live := n
	hold := c.hold().Nanoseconds()
	var herr, firstErr error
	lastFlush := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	recycle := func(b *batch) {
		b.pkts, b.buf, b.next = b.pkts[:0], b.buf[:0], 0
		select {
		case free <- b:
		default:
		}
	}
	// emit writes the packets that can be written; with all set, every
	// queued packet. It returns when the next packet may become writable.
	emit := func(all bool) (wait time.Duration, err error) {
		now := time.Now().UnixNano()
		wrote := false
		var p Packet
		for {
			best, bestT := -1, noPacket
			for s, t := range heads {
				if t < bestT || (best < 0 && t != noPacket) {
					best, bestT = s, t
				}
			}
			if best < 0 {
				break
			}
			blocked := false
			for s, t := range heads {
				if t == noPacket && !ended[s] {
					blocked = true
					break
				}
			}
			if !all && blocked && bestT > now-hold {
				wait = time.Duration(bestT + hold - now)
				break
			}
			b := queues[best][0]
			m := b.pkts[b.next]
			p = Packet{Interface: c.ifcs[best], Time: m.time, Length: m.length, Outgoing: m.outgoing,
				Head: b.buf[m.off : m.off+int(m.headLen)],
				Data: b.buf[m.off+int(m.headLen) : m.off+int(m.headLen)+int(m.dataLen)]}
			if err := h.Packet(&p); err != nil {
				if err == ErrStop {
					c.rings[best].captured.Add(1)
				}
				return 0, err
			}
			c.rings[best].captured.Add(1)
			wrote = true
			if b.next++; b.next == len(b.pkts) {
				queues[best] = queues[best][1:]
				recycle(b)
			}
			heads[best] = noPacket
			if q := queues[best]; len(q) > 0 {
				heads[best] = q[0].pkts[q[0].next].time
			}
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
				// Stop the readers and discard what they still send.
				c.wakeAll()
			}
		}
		var tc <-chan time.Time
		if herr == nil && wait > 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case b := <-ch:
			if b.done {
				live--
				ended[b.src] = true
				if isPartEnd(b.err) {
					// Its reader has returned and its packets were
					// copied out: release the socket, which holds the
					// namespace alive.
					c.rings[b.src].close()
					h.Ended(c.ifcs[b.src], b.err)
				} else if b.err != nil && !errors.Is(b.err, ErrStop) && firstErr == nil {
					firstErr = wrap("capture", c.ifcs[b.src].Name, b.err)
				}
				continue
			}
			if herr != nil {
				recycle(b)
				continue
			}
			queues[b.src] = append(queues[b.src], b)
			if len(queues[b.src]) == 1 {
				heads[b.src] = b.pkts[0].time
			}
		case <-tc:
		}
		if tc != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
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
