package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	protov2 "google.golang.org/protobuf/proto"

	"github.com/netobs/netobs/netobs/agent/agentpb"
)

// The raw packet stream (see Start.raw_ticket in agentpb/agent.proto): a
// capture's packets on a connection of their own beside the gRPC call, so
// that they skip gRPC's HTTP/2 framing and its goroutine hand-offs. It
// arrives on the agent's one listener and is told apart from gRPC by its
// first bytes: gRPC (HTTP/2) starts with "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
// the raw stream with rawMagic and a ticket the Capture call handed out.

const (
	// rawMagic opens a raw stream, from the client, and answers it, from
	// the agent.
	rawMagic = "NOBRAW1\n"
	// ticketLen is the size of a raw stream's ticket.
	ticketLen = 32
	// rawHello is the client's first bytes: the magic and the ticket.
	rawHello = len(rawMagic) + ticketLen
	// rawFrameHeader: u32 little-endian length of the data, kind byte.
	rawFrameHeader = 5
	// maxRawFrame bounds a frame's data: a batch is at most batchBytes
	// plus one record, a control message far less.
	maxRawFrame = 1 << 20
	// prefaceTimeout bounds how long an accepted connection may take to
	// send its first bytes.
	prefaceTimeout = 10 * time.Second
)

// Kinds of raw frames.
const (
	rawEnd     = 0 // no data: the stream is complete, Final follows on the call
	rawRecords = 1 // a Packets message's records
	rawMessage = 2 // any other CaptureMessage, protobuf-encoded
)

// rawWait is how long a capture waits for its raw stream before it sends
// the packets on the gRPC call after all (a variable for tests).
var rawWait = 5 * time.Second

type ticket [ticketLen]byte

// parseHello reads the first bytes of a connection: raw is true, with the
// ticket, when b (at least len(rawMagic) bytes, at most rawHello) opens a
// raw stream; need is how many bytes of b it must see to decide (rawHello
// for a raw stream, else len(rawMagic)). Anything else is for gRPC.
func parseHello(b []byte) (t ticket, raw bool, need int) {
	if len(b) < len(rawMagic) {
		return t, false, len(rawMagic)
	}
	if string(b[:len(rawMagic)]) != rawMagic {
		return t, false, len(rawMagic)
	}
	if len(b) < rawHello {
		return t, false, rawHello
	}
	copy(t[:], b[len(rawMagic):rawHello])
	return t, true, rawHello
}

// Listener returns l wrapped so that it also serves the raw packet
// streams of s's captures: serve the returned listener with s's
// GRPCServer. A capture offers a raw stream only when s serves through
// such a listener. Closing the returned listener closes l.
func (s *Server) Listener(l net.Listener) net.Listener {
	s.rawOK.Store(true)
	ml := &muxListener{Listener: l, s: s, conns: make(chan net.Conn), done: make(chan struct{})}
	go ml.loop()
	return ml
}

// muxListener accepts from the wrapped listener on its own goroutine and
// routes each connection by its first bytes: raw streams to their
// capture, everything else (gRPC) to Accept, with the bytes read replayed.
type muxListener struct {
	net.Listener
	s     *Server
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	err   error // set once, before done closes: why the loop ended
}

func (ml *muxListener) loop() {
	var delay time.Duration
	for {
		c, err := ml.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() { // EMFILE and friends: back off
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			ml.closeWith(err)
			return
		}
		delay = 0
		go ml.route(c)
	}
}

func (ml *muxListener) route(c net.Conn) {
	var b [rawHello]byte
	c.SetReadDeadline(time.Now().Add(prefaceTimeout))
	n, err := io.ReadFull(c, b[:len(rawMagic)])
	if err != nil {
		c.Close()
		return
	}
	t, raw, need := parseHello(b[:n])
	if need > n {
		if n, err = io.ReadFull(c, b[n:need]); err != nil {
			c.Close()
			return
		}
		t, raw, _ = parseHello(b[:need])
	}
	c.SetReadDeadline(time.Time{})
	if raw {
		if !ml.s.claim(t, c) {
			c.Close()
		}
		return
	}
	select {
	case ml.conns <- &prefixConn{Conn: c, pre: b[:len(rawMagic)]}:
	case <-ml.done:
		c.Close()
	}
}

// Accept returns the next connection that is not a raw stream.
func (ml *muxListener) Accept() (net.Conn, error) {
	select {
	case c := <-ml.conns:
		return c, nil
	case <-ml.done:
		if ml.err != nil {
			return nil, ml.err
		}
		return nil, net.ErrClosed
	}
}

// Close closes the wrapped listener; connections not yet routed are
// closed.
func (ml *muxListener) Close() error { return ml.closeWith(nil) }

// closeWith closes once; Accept then returns acceptErr, or net.ErrClosed.
func (ml *muxListener) closeWith(acceptErr error) error {
	err := net.ErrClosed
	ml.once.Do(func() {
		ml.err = acceptErr
		err = ml.Listener.Close()
		close(ml.done)
	})
	return err
}

// prefixConn replays the bytes read to route it.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// rawOffer is a capture's offer of a raw stream: the connection that
// claims its ticket comes on conn.
type rawOffer struct {
	s    *Server
	t    ticket
	conn chan net.Conn // capacity 1: claim never blocks
}

// offerRaw registers a new ticket until take or forget.
func (s *Server) offerRaw() *rawOffer {
	o := &rawOffer{s: s, conn: make(chan net.Conn, 1)}
	rand.Read(o.t[:])
	s.mu.Lock()
	if s.tickets == nil {
		s.tickets = map[ticket]*rawOffer{}
	}
	s.tickets[o.t] = o
	s.mu.Unlock()
	return o
}

// claim hands c to the capture that offered t, once.
func (s *Server) claim(t ticket, c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.tickets[t]
	if o == nil {
		return false
	}
	delete(s.tickets, t)
	o.conn <- c
	return true
}

// offerRawFor offers a raw stream to the capture that req starts, and
// puts its ticket in start, when req asks for one and s serves through
// Listener; else it returns nil. Withdraw the offer when the call ends.
func (s *Server) offerRawFor(req *agentpb.CaptureRequest, start *agentpb.Start) *rawOffer {
	if !req.RawStream || !s.rawOK.Load() {
		return nil
	}
	o := s.offerRaw()
	start.RawTicket = o.t[:]
	return o
}

// withdraw forgets the offer and closes the connection that claimed it
// if the capture did not take it; nothing for a nil offer.
func (o *rawOffer) withdraw() {
	if o == nil {
		return
	}
	if c := o.forget(); c != nil {
		c.Close()
	}
}

// forget withdraws the offer and returns the connection that claimed it,
// if any (nil otherwise): after forget none can come.
func (o *rawOffer) forget() net.Conn {
	o.s.mu.Lock()
	delete(o.s.tickets, o.t)
	o.s.mu.Unlock()
	select {
	case c := <-o.conn:
		return c
	default:
		return nil
	}
}

// wait returns the connection that claims the offer within d, or nil
// (then the offer is withdrawn) when none does or ctx ends first.
func (o *rawOffer) wait(ctx context.Context, d time.Duration) net.Conn {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case c := <-o.conn:
		return c
	case <-t.C:
	case <-ctx.Done():
	}
	c := o.forget()
	if c != nil && ctx.Err() != nil {
		c.Close()
		return nil
	}
	return c
}

// rawSink writes a capture to a raw stream. It holds frames until flush
// (send flushes at coalesceBytes, after coalesceWait, and before it idles
// or returns), so that a flood goes out in a few large writes: each write
// wakes the client and costs both ends per call, whatever its size.
type rawSink struct {
	c     net.Conn
	free  batchPool
	pend  []rawFrame
	size  int // bytes of data in pend
	bufs  net.Buffers
	spent []*[]byte // batch buffers in pend, back to free once written
}

// rawFrame is a frame held for the next flush.
type rawFrame struct {
	hdr  [rawFrameHeader]byte
	data []byte
}

func (w *rawSink) add(kind byte, data []byte) {
	f := rawFrame{data: data}
	binary.LittleEndian.PutUint32(f.hdr[:4], uint32(len(data)))
	f.hdr[4] = kind
	w.pend = append(w.pend, f)
	w.size += len(data)
}

func (w *rawSink) pending() int { return w.size }

// flush writes the held frames in one writev, without copying their
// data: a quietConn's own, else net.Buffers' (which a net.TCPConn or
// net.UnixConn makes one writev).
func (w *rawSink) flush() error {
	if len(w.pend) == 0 {
		return nil
	}
	w.bufs = w.bufs[:0]
	for i := range w.pend {
		w.bufs = append(w.bufs, w.pend[i].hdr[:], w.pend[i].data)
	}
	var err error
	if v, ok := w.c.(interface {
		Writev([][]byte) (int64, error)
	}); ok {
		_, err = v.Writev(w.bufs)
	} else {
		_, err = w.bufs.WriteTo(w.c)
	}
	for _, b := range w.spent {
		w.free.Put(b)
	}
	clear(w.pend) // let the data go
	w.pend, w.spent, w.size = w.pend[:0], w.spent[:0], 0
	return err
}

// frame writes a frame at once, after those held.
func (w *rawSink) frame(kind byte, data []byte) error {
	w.add(kind, data)
	return w.flush()
}

func (w *rawSink) batch(b *packetBatch) error {
	w.add(rawRecords, *b.records)
	w.spent = append(w.spent, b.records)
	return nil
}

func (w *rawSink) msg(m *agentpb.CaptureMessage) error {
	data, err := protov2.Marshal(m)
	if err != nil {
		return err
	}
	w.add(rawMessage, data)
	return nil
}

// rawSource reads a raw stream on the client: next returns its messages,
// a Packets message's records aliasing a buffer reused by the next call,
// and io.EOF after the end frame.
type rawSource struct {
	r     *bufio.Reader
	buf   []byte
	frame captureFrame
	ended bool
}

func newRawSource(r io.Reader) *rawSource {
	return &rawSource{r: bufio.NewReaderSize(r, 256<<10)}
}

// errRawTruncated: the raw stream ended before its end frame.
var errRawTruncated = errors.New("raw stream ended before its end")

func (s *rawSource) next() (*agentpb.CaptureMessage, error) {
	if s.ended {
		return nil, io.EOF
	}
	var hdr [rawFrameHeader]byte
	if _, err := io.ReadFull(s.r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errRawTruncated
		}
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:4])
	kind := hdr[4]
	if n > maxRawFrame {
		return nil, fmt.Errorf("%w: raw frame of %d bytes", ErrProtocol, n)
	}
	switch kind {
	case rawEnd:
		if n != 0 {
			return nil, fmt.Errorf("%w: end frame with data", ErrProtocol)
		}
		s.ended = true
		return nil, io.EOF
	case rawRecords, rawMessage:
	default:
		return nil, fmt.Errorf("%w: raw frame of kind %d", ErrProtocol, kind)
	}
	if cap(s.buf) < int(n) {
		s.buf = make([]byte, n, max(n, 512<<10+512<<7))
	}
	s.buf = s.buf[:n]
	if _, err := io.ReadFull(s.r, s.buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errRawTruncated
		}
		return nil, err
	}
	if kind == rawRecords {
		f := &s.frame
		f.packets = agentpb.Packets{Records: s.buf[:n:n]}
		f.wrapper.Packets = &f.packets
		f.msg.Msg = &f.wrapper
		return &f.msg, nil
	}
	m := new(agentpb.CaptureMessage)
	if err := protov2.Unmarshal(s.buf, m); err != nil {
		return nil, fmt.Errorf("%w: raw message: %v", ErrProtocol, err)
	}
	switch m.Msg.(type) {
	case *agentpb.CaptureMessage_Packets, *agentpb.CaptureMessage_Notice, *agentpb.CaptureMessage_Progress, *agentpb.CaptureMessage_Ended:
	default:
		return nil, fmt.Errorf("%w: %T on the raw stream", ErrProtocol, m.Msg)
	}
	return m, nil
}

// openRaw connects a raw stream for ticket t through dial and waits for
// the agent's answer.
func openRaw(ctx context.Context, dial func(context.Context) (net.Conn, error), t []byte) (net.Conn, error) {
	c, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	// A deadline as well, for connections (port-forward streams) that
	// may not heed one: Close above covers those.
	c.SetDeadline(time.Now().Add(rawWait))
	hello := append([]byte(rawMagic), t...)
	var ack [len(rawMagic)]byte
	if _, err = c.Write(hello); err == nil {
		_, err = io.ReadFull(c, ack[:])
	}
	if err == nil && string(ack[:]) != rawMagic {
		err = errors.New("agent refused the raw stream")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
