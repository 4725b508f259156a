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
	if err := stream.Send(&agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Start{Start: start}}); err != nil {
		return err
	}

	blockTO := capture.DefaultBlockTimeout
	if req.Immediate {
		blockTO = time.Millisecond
	}
	h := &streamHandler{
		q:       make(chan protov2.Message, 1024+len(cp.Interfaces())),
		limit:   int64(s.cfg.StreamBuffer),
		dropped: make([]atomic.Uint64, len(cp.Interfaces())),
		limitN:  req.Count,
		lag:     int64(2*blockTO + 100*time.Millisecond),
		free:    make(batchPool, 4),
		pcapng:  req.PacketFormat == agentpb.PacketFormat_PACKET_FORMAT_PCAPNG,
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var sendErr error
	go func() {
		defer wg.Done()
		sendErr = h.send(stream)
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

func (h *streamHandler) Packet(p *capture.Packet) error {
	if h.pcapng {
		h.batch = pktout.AppendEnhancedPacket(h.batch, p)
	} else {
		h.batch = appendRecord(h.batch, uint32(p.Interface.ID), p.Outgoing, p.Time, p.Length, p.Head, p.Data)
	}
	h.count++
	h.pending.Store(true)
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

// send writes the queue to the stream until it is closed, and a Progress
// message whenever the queue has been idle for progressEvery.
func (h *streamHandler) send(stream agentpb.Agent_CaptureServer) error {
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	sent := false
	for {
		select {
		case m, ok := <-h.q:
			if !ok {
				return nil
			}
			if b, ok := m.(*packetBatch); ok {
				h.queued.Add(-int64(len(*b.records)))
			}
			// SendMsg, not Send: m may be a *packetBatch, whose buffer
			// comes back to h.free when gRPC has written it.
			if err := stream.SendMsg(m); err != nil {
				// Drain so that push never blocks on a full queue.
				go func() {
					for range h.q {
					}
				}()
				return err
			}
			sent = true
		case <-t.C:
			if !sent && !h.pending.Load() && len(h.q) == 0 {
				wm := time.Now().UnixNano() - h.lag
				if err := stream.Send(&agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Progress{Progress: &agentpb.Progress{Watermark: wm}}}); err != nil {
					go func() {
						for range h.q {
						}
					}()
					return err
				}
			}
			sent = false
		}
	}
}
