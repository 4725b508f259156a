package agent

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	protov2 "google.golang.org/protobuf/proto"

	"github.com/netobs/netobs/netobs/agent/agentpb"
	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/pktout"
	"github.com/netobs/netobs/netobs/runtime"
)

func ownerOf(c *runtime.Container) *pktout.Owner {
	return &pktout.Owner{Runtime: c.Runtime, ContainerID: c.ID, Container: c.Name, Pod: c.Pod, PodNamespace: c.PodNamespace}
}

// Capture implements agentpb.AgentServer: the capture runs on this
// goroutine, a sender goroutine writes to the stream from a queue bounded
// by Config.StreamBuffer bytes. When the client reads too slowly the queue
// fills and whole batches are dropped and counted per interface; the
// capture itself never waits for the client, so the kernel ring keeps
// draining. When the call ends (client gone, deadline, agent stopping)
// Run returns, and the deferred Close frees the rings and sockets.
func (s *Server) Capture(req *agentpb.CaptureRequest, stream agentpb.Agent_CaptureServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	switch req.PacketFormat {
	case agentpb.PacketFormat_PACKET_FORMAT_RECORDS, agentpb.PacketFormat_PACKET_FORMAT_PCAPNG:
	default:
		return status.Errorf(codes.InvalidArgument, "unknown packet format %d", req.PacketFormat)
	}
	var nt notices
	targets, filter, err := s.cfg.Backend.CaptureTargets(ctx, req.Args, int(req.Dash), req.Selector, &nt)
	defer func() {
		for _, t := range targets {
			t.NS.Close()
		}
	}()
	if err != nil {
		return s.statusOf(ctx, err)
	}
	cfg := capture.Config{Interfaces: req.Interfaces, Snaplen: int(req.Snaplen), BufferSize: int(req.BufferSize),
		Immediate: req.Immediate, Filter: filter}
	cp, err := capture.OpenContext(ctx, targets, cfg)
	if err != nil {
		return s.statusOf(ctx, err)
	}
	defer cp.Close()

	for _, l := range nt.take() {
		if err := stream.Send(&agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Notice{Notice: &agentpb.Notice{Text: l}}}); err != nil {
			return err
		}
	}
	// Stop ends the capture but not the stream, which goes on to Final.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	id, forget := s.register(stopRun)
	defer forget()
	start := &agentpb.Start{Id: id}
	for _, ifc := range cp.Interfaces() {
		start.Interfaces = append(start.Interfaces, interfaceToPB(ifc))
	}
	raw := s.offerRawFor(req, start)
	defer raw.withdraw()
	if err := stream.Send(&agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Start{Start: start}}); err != nil {
		return err
	}

	blockTO := capture.DefaultBlockTimeout
	if req.Immediate {
		blockTO = time.Millisecond
	}
	h := newStreamHandler(s.cfg.StreamBuffer, len(cp.Interfaces()), req.Count, 2*blockTO+100*time.Millisecond)
	h.pcapng = req.PacketFormat == agentpb.PacketFormat_PACKET_FORMAT_PCAPNG
	var wg sync.WaitGroup
	wg.Add(1)
	var sendErr error
	go func() {
		defer wg.Done()
		sendErr = h.sendTo(ctx, stream, raw)
		if sendErr != nil {
			cancel() // the client is gone: stop capturing
		}
	}()
	runErr := cp.Run(runCtx, h)
	h.push(nil) // flush the last batch
	close(h.q)
	wg.Wait()

	final := &agentpb.Final{Reason: agentpb.EndReason_END_REASON_STOPPED}
	switch {
	case runErr != nil:
		final.Reason, final.Error = agentpb.EndReason_END_REASON_ERROR, runErr.Error()
	case h.limitN > 0 && h.n >= h.limitN:
		final.Reason = agentpb.EndReason_END_REASON_COUNT
	case h.ended == len(cp.Interfaces()):
		final.Reason = agentpb.EndReason_END_REASON_ALL_ENDED
	}
	for i, st := range cp.Stats() {
		final.Counts = append(final.Counts, &agentpb.InterfaceCounts{Index: uint32(i), Received: st.Received,
			KernelDropped: st.Dropped, Captured: st.Captured, AgentDropped: h.dropped[i].Load()})
	}
	if sendErr != nil {
		return sendErr
	}
	return stream.Send(&agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Final{Final: final}})
}

// streamHandler batches packets into Packets messages and queues them
// without ever blocking the capture.
type streamHandler struct {
	// q holds *agentpb.CaptureMessage and *packetBatch.
	q       chan protov2.Message
	queued  atomic.Int64 // bytes of records in q
	limit   int64
	dropped []atomic.Uint64 // per interface: packets the queue had no room for
	batch   []byte
	count   uint32
	n       uint64 // packets handed over
	limitN  uint64
	ended   int
	// pending is set while batch holds packets not yet queued: Progress
	// must not claim a watermark past them.
	pending atomic.Bool
	lag     int64 // how late a packet can surface after its timestamp
	// free holds batch buffers that gRPC has written out (see
	// captureCodec).
	free batchPool
	// pcapng: batches hold pcapng enhanced packet blocks, not records.
	pcapng bool
}

func newStreamHandler(limit, nifc int, count uint64, lag time.Duration) *streamHandler {
	return &streamHandler{
		q:       make(chan protov2.Message, 1024+nifc),
		limit:   int64(limit),
		dropped: make([]atomic.Uint64, nifc),
		limitN:  count,
		lag:     int64(lag),
		// Enough for the batches a raw stream holds (coalesceBytes) and
		// a few more in flight, so that the capture rarely makes one.
		free: make(batchPool, coalesceBytes/batchBytes+4),
	}
}

func (h *streamHandler) Packet(p *capture.Packet) error {
	if h.pcapng {
		h.batch = pktout.AppendEnhancedPacket(h.batch, p)
	} else {
		h.batch = appendRecord(h.batch, uint32(p.Interface.ID), p.Outgoing, p.Time, p.Length, p.Head, p.Data)
	}
	if h.count == 0 {
		// Once per batch: an atomic store per packet costs a full
		// barrier each on x86.
		h.pending.Store(true)
	}
	h.count++
	h.n++
	if len(h.batch) >= batchBytes {
		h.push(nil)
	}
	if h.limitN > 0 && h.n >= h.limitN {
		return capture.ErrStop
	}
	return nil
}

func (h *streamHandler) Flush() error {
	h.push(nil)
	return nil
}

func (h *streamHandler) Ended(ifc *capture.Interface, reason error) {
	h.ended++
	h.push(&agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Ended{Ended: &agentpb.Ended{
		Index: uint32(ifc.ID), Reason: reason.Error(), NamespaceGone: errors.Is(reason, capture.ErrNamespaceGone)}}})
}

// push queues the batch, then ctl if not nil. A batch that does not fit
// is dropped and its packets counted; a control message is never dropped
// (there are few: one per interface at most).
func (h *streamHandler) push(ctl *agentpb.CaptureMessage) {
	if h.count > 0 {
		size := int64(len(h.batch))
		if h.queued.Load()+size > h.limit || len(h.q) >= cap(h.q)-len(h.dropped)-1 {
			h.countDropped()
			h.batch = h.batch[:0]
		} else {
			h.queued.Add(size)
			h.q <- newPacketBatch(h.batch, h.count, h.free)
			// A buffer gRPC is done with, else a new one: the queue and
			// gRPC's flow control bound how many exist.
			select {
			case b := <-h.free:
				h.batch = b[:0]
			default:
				h.batch = make([]byte, 0, batchBytes+batchBytes/8)
			}
		}
		h.count = 0
		h.pending.Store(false)
	}
	if ctl != nil {
		h.q <- ctl
	}
}

// countDropped counts the packets of the batch, which is not sent, as
// dropped.
func (h *streamHandler) countDropped() {
	if !h.pcapng {
		parseRecords(h.batch, len(h.dropped), func(r *record) error {
			h.dropped[r.iface].Add(1)
			return nil
		})
		return
	}
	for b := h.batch; len(b) > 0; {
		p, n, err := pktout.ReadEnhancedPacket(b, len(h.dropped), maxRecordData)
		if err != nil {
			return
		}
		h.dropped[p.Interface].Add(1)
		b = b[n:]
	}
}

// captureSink is where a capture's messages go: the gRPC call, or a raw
// stream beside it. A sink may hold what it is given until flush; pending
// says how many bytes of it it holds.
type captureSink interface {
	batch(b *packetBatch) error
	msg(m *agentpb.CaptureMessage) error
	pending() int
	flush() error
}

// grpcSink sends on the call; a batch's buffer comes back to the pool
// once gRPC has written it (see captureCodec). It holds nothing.
type grpcSink struct{ stream agentpb.Agent_CaptureServer }

func (g grpcSink) batch(b *packetBatch) error          { return g.stream.SendMsg(b) }
func (g grpcSink) msg(m *agentpb.CaptureMessage) error { return g.stream.Send(m) }
func (g grpcSink) pending() int                        { return 0 }
func (g grpcSink) flush() error                        { return nil }

// sendTo sends the queue on the raw stream that claims raw's ticket if
// one does within rawWait, else (raw nil, or unclaimed) on the call. On
// the raw stream it ends with the end frame; the caller then sends Final
// on the call. Ending ctx closes the raw stream.
func (h *streamHandler) sendTo(ctx context.Context, stream agentpb.Agent_CaptureServer, raw *rawOffer) error {
	if raw != nil {
		if c := raw.wait(ctx, rawWait); c != nil {
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			if _, err := c.Write([]byte(rawMagic)); err != nil {
				h.drain()
				return err
			}
			w := &rawSink{c: quiet(c), free: h.free}
			if err := h.send(w); err != nil {
				return err
			}
			return w.frame(rawEnd, nil) // after the frames send flushed
		}
	}
	return h.send(grpcSink{stream})
}

// drain empties the queue in the background so that push never blocks on
// a full queue once nothing sends any more.
func (h *streamHandler) drain() {
	go func() {
		for range h.q {
		}
	}()
}

// send writes the queue to w until it is closed, and a Progress
// message whenever the queue has been idle for progressEvery. What w holds
// is flushed once it reaches coalesceBytes, coalesceWait after the first
// of it was given, before a Progress message, and at the end.
func (h *streamHandler) send(w captureSink) error {
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	hold := time.NewTimer(time.Hour)
	hold.Stop()
	held := false
	flush := func() error {
		if held {
			hold.Stop()
			held = false
		}
		return w.flush()
	}
	fail := func(err error) error {
		h.drain()
		return err
	}
	sent := false
	for {
		select {
		case m, ok := <-h.q:
			if !ok {
				return flush()
			}
			var err error
			if b, ok := m.(*packetBatch); ok {
				h.queued.Add(-int64(len(*b.records)))
				err = w.batch(b)
			} else {
				err = w.msg(m.(*agentpb.CaptureMessage))
			}
			if err == nil && w.pending() >= coalesceBytes {
				err = flush()
			} else if err == nil && !held && w.pending() > 0 {
				hold.Reset(coalesceWait)
				held = true
			}
			if err != nil {
				return fail(err)
			}
			sent = true
		case <-hold.C:
			held = false
			if err := w.flush(); err != nil {
				return fail(err)
			}
		case <-t.C:
			if !sent && !h.pending.Load() && len(h.q) == 0 {
				if err := flush(); err != nil {
					return fail(err)
				}
				wm := time.Now().UnixNano() - h.lag
				if err := w.msg(&agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Progress{Progress: &agentpb.Progress{Watermark: wm}}}); err != nil {
					return fail(err)
				}
				if err := flush(); err != nil {
					return fail(err)
				}
			}
			sent = false
		}
	}
}
