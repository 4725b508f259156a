package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/netobs/netobs/netobs/agent/agentpb"
	"github.com/netobs/netobs/netobs/capture"
)

// rawScripted is an agent whose capture is scripted but sent the way
// Server.Capture sends it: through a streamHandler, on a raw stream when
// the request asks for one and srv's listener takes it.
type rawScripted struct {
	agentpb.UnimplementedAgentServer
	srv         *Server
	times       []int64
	grpcBatches atomic.Int64 // packet batches sent on the call
	// forever: send packets until the call ends, then close returned.
	forever  bool
	returned chan struct{}
}

// countingStream counts the packet batches sent on the call.
type countingStream struct {
	agentpb.Agent_CaptureServer
	n *atomic.Int64
}

func (c countingStream) SendMsg(m any) error {
	if _, ok := m.(*packetBatch); ok {
		c.n.Add(1)
	}
	return c.Agent_CaptureServer.SendMsg(m)
}

func (s *rawScripted) Capture(req *agentpb.CaptureRequest, st agentpb.Agent_CaptureServer) error {
	ctx := st.Context()
	start := &agentpb.Start{Id: "x", Interfaces: []*agentpb.Interface{{Index: 0, Name: "eth0@n", LinkType: 1, Snaplen: 100}}}
	raw := s.srv.offerRawFor(req, start)
	defer raw.withdraw()
	if err := st.Send(&agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Start{Start: start}}); err != nil {
		return err
	}
	h := newStreamHandler(DefaultStreamBuffer, 1, 0, time.Millisecond)
	h.pcapng = req.PacketFormat == agentpb.PacketFormat_PACKET_FORMAT_PCAPNG
	var wg sync.WaitGroup
	var sendErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		sendErr = h.sendTo(ctx, countingStream{st, &s.grpcBatches}, raw)
	}()
	ifc := &capture.Interface{ID: 0}
	if s.forever {
		defer close(s.returned)
		for i := int64(1); ctx.Err() == nil; i++ {
			h.Packet(&capture.Packet{Interface: ifc, Time: i, Length: 4, Data: []byte{1, 2, 3, 4}})
			h.Flush()
			time.Sleep(time.Millisecond)
		}
		h.push(nil)
		close(h.q)
		wg.Wait()
		return ctx.Err()
	}
	for i, ts := range s.times {
		h.Packet(&capture.Packet{Interface: ifc, Time: ts, Length: 4, Data: []byte{1, 2, 3, byte(i)}})
		if i%2 == 1 {
			h.Flush()
		}
	}
	h.Ended(ifc, capture.ErrInterfaceGone)
	h.push(nil)
	close(h.q)
	wg.Wait()
	if sendErr != nil {
		return sendErr
	}
	return st.Send(&agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Final{Final: &agentpb.Final{Reason: agentpb.EndReason_END_REASON_ALL_ENDED,
		Counts: []*agentpb.InterfaceCounts{{Index: 0, Received: uint64(len(s.times)), Captured: uint64(len(s.times))}}}}})
}

// serveRaw serves s through srv.Listener on a unix socket and returns its
// path.
func serveRaw(t *testing.T, s *rawScripted) string {
	t.Helper()
	srv, err := NewServer(Config{Backend: fakeBackend{}})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = srv
	path := filepath.Join(t.TempDir(), "a.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.ForceServerCodecV2(captureCodec{}))
	agentpb.RegisterAgentServer(g, s)
	go g.Serve(srv.Listener(l))
	t.Cleanup(g.Stop)
	return path
}

// A capture's packets come on the raw stream when both sides can, on the
// call when the client declines it or cannot connect it (after rawWait):
// the same packets, in order, with the Ended and Final that follow them.
func TestRawStreamAndFallbacks(t *testing.T) {
	defer func(d time.Duration) { rawWait = d }(rawWait)
	rawWait = 300 * time.Millisecond
	times := []int64{1, 2, 3, 4, 5, 6, 7}
	for _, tc := range []struct {
		name      string
		noRaw     bool
		failRaw   bool // every Dial after the first fails
		pcapng    bool // PACKET_FORMAT_PCAPNG
		wantOnRaw bool
	}{
		{name: "raw", wantOnRaw: true},
		{name: "raw pcapng", pcapng: true, wantOnRaw: true},
		{name: "declined", noRaw: true},
		{name: "raw dial fails", failRaw: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &rawScripted{times: times}
			path := serveRaw(t, s)
			var dials atomic.Int32
			dial := func(ctx context.Context) (net.Conn, error) {
				if dials.Add(1) > 1 && tc.failRaw {
					return nil, errors.New("no second connection")
				}
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			}
			c, err := New(Source{Name: "a", Dial: dial, NoRawStream: tc.noRaw})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var got collect
			req := &agentpb.CaptureRequest{}
			if tc.pcapng {
				req.PacketFormat = agentpb.PacketFormat_PACKET_FORMAT_PCAPNG
			}
			res, err := c.Capture(context.Background(), req, &collectRemote{collect: &got})
			if err != nil {
				t.Fatal(err)
			}
			if len(got.times) != len(times) {
				t.Fatalf("got %v, want %v", got.times, times)
			}
			for i := range times {
				if got.times[i] != times[i] {
					t.Fatalf("got %v, want %v", got.times, times)
				}
			}
			if !res.Final || res.Ended != 1 || res.Stats[0].Captured != uint64(len(times)) || res.Stats[0].Received != uint64(len(times)) {
				t.Errorf("result %+v", res)
			}
			onCall := s.grpcBatches.Load()
			if tc.wantOnRaw && onCall != 0 {
				t.Errorf("%d batches on the call, want all on the raw stream", onCall)
			}
			if !tc.wantOnRaw && onCall == 0 {
				t.Error("no batch on the call, want all there")
			}
			if want := int32(2); !tc.noRaw && dials.Load() != want {
				t.Errorf("%d dials, want %d", dials.Load(), want)
			}
			s.srv.mu.Lock()
			left := len(s.srv.tickets)
			s.srv.mu.Unlock()
			if left != 0 {
				t.Errorf("%d tickets left after the call", left)
			}
		})
	}
}

// A client that stops reading a raw stream (its handler fails) ends the
// agent's side too: the call's handler returns, no ticket is left.
func TestRawStreamClientGone(t *testing.T) {
	s := &rawScripted{forever: true, returned: make(chan struct{})}
	path := serveRaw(t, s)
	c, err := New(Source{Name: "a", Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errStop := errors.New("handler gives up")
	h := &failAfter{collectRemote: collectRemote{collect: &collect{}}, n: 3, err: errStop}
	if _, err := c.Capture(context.Background(), &agentpb.CaptureRequest{}, h); !errors.Is(err, errStop) {
		t.Fatalf("Capture: %v, want the handler's error", err)
	}
	select {
	case <-s.returned:
	case <-time.After(time.Minute):
		t.Fatal("the agent's capture still runs a minute after its client went")
	}
	if s.grpcBatches.Load() != 0 {
		t.Error("packets went on the call, not the raw stream")
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if len(s.srv.tickets) != 0 {
		t.Errorf("%d tickets left", len(s.srv.tickets))
	}
}

// failAfter fails its n-th packet.
type failAfter struct {
	collectRemote
	n   int
	err error
}

func (f *failAfter) Packet(p *capture.Packet) error {
	if f.n--; f.n == 0 {
		return f.err
	}
	return f.collectRemote.Packet(p)
}

// One listener serves gRPC and raw streams; a ticket is good once, an
// unknown one gets no answer.
func TestRawListenerTickets(t *testing.T) {
	srv, err := NewServer(Config{Backend: fakeBackend{}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "a.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	g := srv.GRPCServer()
	go g.Serve(srv.Listener(l))
	defer g.Stop()
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	c, err := New(Source{Name: "a", Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cs, err := c.Containers(ctx, ""); err != nil || len(cs) != 1 {
		t.Fatalf("gRPC through the listener: %v %v", cs, err)
	}

	o := srv.offerRaw()
	defer o.forget()
	go func() { // the capture's side: answer the stream that claims o
		if rc := o.wait(ctx, time.Minute); rc != nil {
			rc.Write([]byte(rawMagic))
			rc.Close()
		}
	}()
	var wrong ticket
	copy(wrong[:], o.t[:])
	wrong[0] ^= 1
	if rc, err := openRaw(ctx, dial, wrong[:]); err == nil {
		rc.Close()
		t.Error("a wrong ticket was answered")
	}
	rc, err := openRaw(ctx, dial, o.t[:])
	if err != nil {
		t.Fatalf("the right ticket: %v", err)
	}
	rc.Close()
	if rc, err := openRaw(ctx, dial, o.t[:]); err == nil {
		rc.Close()
		t.Error("a ticket was answered twice")
	}
	if cs, err := c.Containers(ctx, ""); err != nil || len(cs) != 1 {
		t.Fatalf("gRPC after the raw streams: %v %v", cs, err)
	}
}

// rawStreamBytes is a raw stream as the agent writes it.
func rawStreamBytes(t testing.TB, msgs []*agentpb.CaptureMessage, end bool) []byte {
	var out bytes.Buffer
	c1, c2 := net.Pipe()
	done := make(chan struct{})
	go func() {
		io.Copy(&out, c2)
		close(done)
	}()
	w := &rawSink{c: c1, free: make(batchPool, 1)}
	for _, m := range msgs {
		var err error
		if p := m.GetPackets(); p != nil {
			err = w.batch(newPacketBatch(p.Records, p.Count, w.free))
		} else {
			err = w.msg(m)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if end {
		w.frame(rawEnd, nil)
	} else if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	c1.Close()
	<-done
	return out.Bytes()
}

// What rawSink writes, rawSource reads back; a stream cut before its end
// frame is an error, not a clean end.
func TestRawSinkSource(t *testing.T) {
	msgs := []*agentpb.CaptureMessage{packets(0, 1, 2),
		{Msg: &agentpb.CaptureMessage_Progress{Progress: &agentpb.Progress{Watermark: 9}}},
		packets(1, 10)}
	b := rawStreamBytes(t, msgs, true)
	src := newRawSource(bytes.NewReader(b))
	for i, want := range msgs {
		m, err := src.next()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !proto.Equal(withoutCount(want), m) {
			t.Fatalf("message %d: got %v, want %v", i, m, want)
		}
	}
	if _, err := src.next(); err != io.EOF {
		t.Fatalf("after the end: %v, want io.EOF", err)
	}
	cut := newRawSource(bytes.NewReader(b[:len(b)-rawFrameHeader]))
	var err error
	for err == nil {
		_, err = cut.next()
	}
	if !errors.Is(err, errRawTruncated) {
		t.Errorf("cut stream: %v, want errRawTruncated", err)
	}
}

// withoutCount is m with Packets.count cleared: the raw stream carries
// only the records.
func withoutCount(m *agentpb.CaptureMessage) *agentpb.CaptureMessage {
	if p := m.GetPackets(); p != nil {
		return &agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Packets{Packets: &agentpb.Packets{Records: p.Records}}}
	}
	return m
}

// FuzzParseHello: a connection is a raw stream exactly when it starts
// with the magic and a whole ticket, which parseHello returns.
func FuzzParseHello(f *testing.F) {
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Add(append([]byte(rawMagic), bytes.Repeat([]byte{7}, ticketLen)...))
	f.Add([]byte(rawMagic))
	f.Add([]byte("NOBRAW2\n0123456789abcdef0123456789abcdef"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > rawHello {
			b = b[:rawHello]
		}
		tk, raw, need := parseHello(b)
		wantRaw := len(b) == rawHello && bytes.HasPrefix(b, []byte(rawMagic))
		if raw != wantRaw {
			t.Fatalf("raw = %v for %q", raw, b)
		}
		if raw && !bytes.Equal(tk[:], b[len(rawMagic):]) {
			t.Fatalf("ticket %x from %q", tk, b)
		}
		if need != len(rawMagic) && need != rawHello {
			t.Fatalf("need %d", need)
		}
		if !raw && len(b) >= need && need == rawHello {
			t.Fatalf("decided nothing with %d bytes of %d", len(b), need)
		}
	})
}

// FuzzRawSource: reading any bytes as a raw stream ends in an error or
// io.EOF, never a panic; records frames hold what the record parser
// validates, control frames only the messages allowed there.
func FuzzRawSource(f *testing.F) {
	f.Add(rawStreamBytes(f, []*agentpb.CaptureMessage{packets(0, 1, 2),
		{Msg: &agentpb.CaptureMessage_Ended{Ended: &agentpb.Ended{Index: 0, Reason: "gone"}}}}, true))
	f.Add(rawStreamBytes(f, []*agentpb.CaptureMessage{{Msg: &agentpb.CaptureMessage_Final{Final: &agentpb.Final{}}}}, true))
	f.Add(rawStreamBytes(f, []*agentpb.CaptureMessage{packets(0, 1)}, false))
	big := make([]byte, rawFrameHeader)
	binary.LittleEndian.PutUint32(big, maxRawFrame+1)
	big[4] = rawRecords
	f.Add(big)
	f.Fuzz(func(t *testing.T, b []byte) {
		src := newRawSource(bytes.NewReader(b))
		for i := 0; ; i++ {
			m, err := src.next()
			if err != nil {
				if err == io.EOF {
					if _, err := src.next(); err != io.EOF {
						t.Fatalf("after the end: %v", err)
					}
				}
				return
			}
			if i > len(b)/rawFrameHeader {
				t.Fatal("more frames than bytes allow")
			}
			switch x := m.Msg.(type) {
			case *agentpb.CaptureMessage_Packets:
				parseRecords(x.Packets.Records, 2, func(r *record) error { return nil })
			case *agentpb.CaptureMessage_Notice, *agentpb.CaptureMessage_Progress, *agentpb.CaptureMessage_Ended:
			default:
				t.Fatalf("%T on the raw stream", m.Msg)
			}
		}
	})
}

// heldSink is a captureSink that holds what it is given, as rawSink does,
// and hands each flush's items to flushes.
type heldSink struct {
	held    []string
	size    int
	flushes chan []string
}

func (s *heldSink) batch(b *packetBatch) error {
	s.held = append(s.held, "batch")
	s.size += len(*b.records)
	return nil
}

func (s *heldSink) msg(m *agentpb.CaptureMessage) error {
	s.held = append(s.held, "msg")
	return nil
}

func (s *heldSink) pending() int { return s.size }

func (s *heldSink) flush() error {
	if len(s.held) > 0 {
		s.flushes <- s.held
	}
	s.held, s.size = nil, 0
	return nil
}

// queueBatches queues n batches of size bytes of records on h, as push
// does.
func queueBatches(h *streamHandler, n, size int) {
	for range n {
		h.queued.Add(int64(size))
		h.q <- newPacketBatch(make([]byte, size), 1, h.free)
	}
}

// send holds what it sends until coalesceBytes are held, coalesceWait has
// passed (a lone batch is not kept waiting for more), or the queue ends.
func TestSendCoalesces(t *testing.T) {
	run := func(h *streamHandler) (*heldSink, chan error) {
		s := &heldSink{flushes: make(chan []string, 16)}
		done := make(chan error, 1)
		go func() { done <- h.send(s) }()
		return s, done
	}
	t.Run("small batches wait for each other", func(t *testing.T) {
		h := newStreamHandler(DefaultStreamBuffer, 1, 0, time.Millisecond)
		queueBatches(h, 3, 1000)
		h.q <- &agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Ended{Ended: &agentpb.Ended{}}}
		s, done := run(h)
		// The queue stays open: only coalesceWait can end the hold.
		if got := <-s.flushes; len(got) != 4 {
			t.Errorf("first write held %v, want the 3 batches and the message", got)
		}
		close(h.q)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(s.flushes) != 0 {
			t.Errorf("%d more writes, want none", len(s.flushes))
		}
	})
	t.Run("a full hold goes at once", func(t *testing.T) {
		h := newStreamHandler(DefaultStreamBuffer, 1, 0, time.Millisecond)
		per := coalesceBytes / 4
		queueBatches(h, 5, per)
		close(h.q)
		s, done := run(h)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		first, second := <-s.flushes, <-s.flushes
		if len(first) != 4 || len(second) != 1 {
			t.Errorf("writes of %d and %d batches, want 4 (coalesceBytes) then the last at the end", len(first), len(second))
		}
		if h.queued.Load() != 0 {
			t.Errorf("%d bytes still counted as queued", h.queued.Load())
		}
	})
}

// chunkReader returns what r holds in reads of 1 to max bytes, in a
// fixed pseudo-random order.
type chunkReader struct {
	r    io.Reader
	max  int
	seed uint32
}

func (c *chunkReader) Read(p []byte) (int, error) {
	c.seed = c.seed*1664525 + 1013904223
	n := 1 + int(c.seed>>8)%c.max
	return c.r.Read(p[:min(n, len(p))])
}

// rawSource hands out frames whole and in order whatever the reads it
// gets (frames larger than its buffered reader's buffer included), and a
// stream cut anywhere before its end frame is truncated.
func TestRawSourceAcrossReads(t *testing.T) {
	var msgs []*agentpb.CaptureMessage
	total := 0
	for i := 0; total < 12<<20; i++ {
		size := []int{maxRawFrame, 700 << 10, 1, 333333, 4096}[i%5]
		rec := make([]byte, size)
		for j := range rec {
			rec[j] = byte(i + j)
		}
		msgs = append(msgs, &agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Packets{Packets: &agentpb.Packets{Records: rec}}})
		if i%3 == 0 {
			msgs = append(msgs, &agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Progress{Progress: &agentpb.Progress{Watermark: int64(i)}}})
		}
		total += size
	}
	b := rawStreamBytes(t, msgs, true)
	for _, max := range []int{1 << 30, 64 << 10, 7} {
		if max == 7 && testing.Short() {
			continue
		}
		src := newRawSource(&chunkReader{r: bytes.NewReader(b), max: max})
		for i, want := range msgs {
			m, err := src.next()
			if err != nil {
				t.Fatalf("reads of up to %d: message %d: %v", max, i, err)
			}
			if !proto.Equal(m, want) {
				t.Fatalf("reads of up to %d: message %d differs", max, i)
			}
		}
		if _, err := src.next(); err != io.EOF {
			t.Fatalf("reads of up to %d: after the end frame: %v, want io.EOF", max, err)
		}
	}
	// Cut anywhere before its end frame, the stream is truncated.
	for _, cut := range []int{0, 3, rawFrameHeader + 10, len(b) / 2, len(b) - rawFrameHeader} {
		src := newRawSource(&chunkReader{r: bytes.NewReader(b[:cut]), max: 1 << 20})
		var err error
		for err == nil {
			_, err = src.next()
		}
		if !errors.Is(err, errRawTruncated) {
			t.Errorf("cut at %d: %v, want errRawTruncated", cut, err)
		}
	}
}
