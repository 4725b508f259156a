package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	protov2 "google.golang.org/protobuf/proto"

	"github.com/netobs/netobs/netobs/agent/agentpb"
	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/pktout"
)

// CaptureHandler receives a remote capture, from one goroutine at a
// time. Start comes first; Packet, Flush and Ended are capture.Handler's
// (a Packet error ends the call; capture.ErrStop ends it cleanly).
type CaptureHandler interface {
	capture.Handler
	// Start receives the agent's interfaces; ifcs[i].ID is i.
	Start(ifcs []*pktout.Interface) error
	// Notice receives a line the command prints on stderr.
	Notice(text string)
}

// A CaptureHandler that also has a method Progress(watermark int64) is
// told when the agent promises that no packet older than watermark
// (nanoseconds since the epoch, the agent's clock) will follow.

// CaptureResult is how a remote capture ended.
type CaptureResult struct {
	Interfaces []*pktout.Interface
	// Stats per interface: Received and Dropped (by the kernel) as the
	// agent counted them, Captured as packets that reached this client.
	Stats []pktout.Stats
	// AgentDropped per interface: packets the agent dropped because this
	// client read too slowly.
	AgentDropped []uint64
	// Final is false when the stream ended before the agent's final
	// counts (the agent went away, ctx ended, the handler stopped): then
	// Received and Dropped are zero.
	Final  bool
	Reason agentpb.EndReason
	// Err is the agent's capture error, if Reason is END_REASON_ERROR.
	Err string
	// Ended counts the interfaces whose part ended early.
	Ended int
	// snaplens are the interfaces' snapshot lengths.
	snaplens []uint32
}

// StopGrace is how long a stopped call waits for the agent's final counts
// before it gives up on them.
const StopGrace = 2 * time.Second

// Capture runs a capture on the agent and hands what it streams to h.
// It returns when the agent sends its final counts, when h stops it, or
// when ctx ends: then the agent is asked to stop (as SIGINT stops a local
// capture) and Capture waits up to StopGrace for what it still sends and
// its final counts, then cancels the call. The result is not nil once
// Start has been received, also with an error.
func (c *Client) Capture(ctx context.Context, req *agentpb.CaptureRequest, h CaptureHandler) (*CaptureResult, error) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var idc = make(chan string, 1)
	defer c.stopOnDone(ctx, cancel, idc)()
	if !c.noRaw && !req.RawStream {
		req = protov2.CloneOf(req)
		req.RawStream = true
	}
	// The codec decodes Packets into frame's reused buffer.
	st, err := c.api.Capture(sctx, req, grpc.ForceCodecV2(captureCodec{}))
	if err != nil {
		return nil, c.wrap(err)
	}
	var res *CaptureResult
	var pkt pktout.Packet
	var stopped bool
	var id string
	var frame captureFrame
	pcapng := req.PacketFormat == agentpb.PacketFormat_PACKET_FORMAT_PCAPNG
	// raw, while not nil, is the raw stream the messages come on until
	// its end; then they come on the call again (Final).
	var raw *rawSource
	next := func() (*agentpb.CaptureMessage, error) {
		if raw != nil {
			m, err := raw.next()
			if err == nil {
				return m, nil
			}
			raw = nil
			if err != io.EOF {
				// The call's error says best why (the agent went away,
				// the call was cancelled); else the raw stream's.
				if gerr := st.RecvMsg(&frame); gerr != nil && gerr != io.EOF {
					return nil, gerr
				}
				if errors.Is(err, ErrProtocol) {
					return nil, c.protocol("%v", err)
				}
				return nil, &Error{Addr: c.name, Msg: "raw stream: " + err.Error(), Kind: ErrUnreachable}
			}
		}
		err := st.RecvMsg(&frame)
		return frame.Msg, err
	}
	for {
		m, err := next()
		if err == io.EOF {
			err = c.protocol("stream ended without final counts")
		}
		if err != nil {
			if res != nil {
				h.Flush()
			}
			return res, c.wrap(err)
		}
		if res == nil {
			switch x := m.Msg.(type) {
			case *agentpb.CaptureMessage_Notice:
				h.Notice(x.Notice.Text)
				continue
			case *agentpb.CaptureMessage_Start:
				ifcs, err := startInterfaces(x.Start)
				if err != nil {
					return nil, c.protocol("%v", err)
				}
				id = x.Start.Id
				idc <- id
				if t := x.Start.RawTicket; len(t) != 0 {
					if len(t) != ticketLen || c.noRaw {
						return nil, c.protocol("raw stream ticket of %d bytes", len(t))
					}
					// If the raw stream cannot be had the agent sends on
					// the call after all (rawWait).
					if rc, err := openRaw(sctx, c.dial, t); err == nil {
						stopRaw := context.AfterFunc(sctx, func() { rc.Close() })
						defer stopRaw()
						defer rc.Close()
						raw = newRawSource(quiet(rc))
					}
				}
				res = &CaptureResult{Interfaces: ifcs, Stats: make([]pktout.Stats, len(ifcs)), AgentDropped: make([]uint64, len(ifcs))}
				for _, ifc := range ifcs {
					res.snaplens = append(res.snaplens, uint32(ifc.Snaplen))
				}
				if err := h.Start(ifcs); err != nil {
					return res, err
				}
				continue
			default:
				return nil, c.protocol("%T before the start of the capture", m.Msg)
			}
		}
		switch x := m.Msg.(type) {
		case *agentpb.CaptureMessage_Packets:
			var err error
			if pcapng {
				err = deliverBlocks(x.Packets.Records, res, h, stopped, &pkt)
			} else {
				err = deliverRecords(x.Packets.Records, res, h, stopped, &pkt)
			}
			if errors.Is(err, ErrBadRecords) || errors.Is(err, pktout.ErrBadBlock) {
				h.Flush()
				return res, c.protocol("%v", err)
			}
			if errors.Is(err, capture.ErrStop) {
				// The handler has what it wants: stop the agent too and
				// read on to its final counts, delivering nothing more.
				stopped = true
				c.api.Stop(sctx, &agentpb.StopRequest{Id: id})
				err = nil
			}
			if err == nil {
				err = h.Flush()
			}
			if err != nil {
				return res, err
			}
		case *agentpb.CaptureMessage_Notice:
			h.Notice(x.Notice.Text)
		case *agentpb.CaptureMessage_Progress:
			if p, ok := h.(interface{ Progress(watermark int64) }); ok {
				p.Progress(x.Progress.Watermark)
			}
		case *agentpb.CaptureMessage_Ended:
			if x.Ended.Index >= uint32(len(res.Interfaces)) {
				return res, c.protocol("ended interface %d of %d", x.Ended.Index, len(res.Interfaces))
			}
			res.Ended++
			reason := errors.New(x.Ended.Reason)
			if x.Ended.NamespaceGone {
				reason = &remoteEnd{msg: x.Ended.Reason, kind: capture.ErrNamespaceGone}
			} else {
				reason = &remoteEnd{msg: x.Ended.Reason, kind: capture.ErrInterfaceGone}
			}
			h.Ended(res.Interfaces[x.Ended.Index], reason)
		case *agentpb.CaptureMessage_Final:
			f := x.Final
			res.Final, res.Reason, res.Err = true, f.Reason, f.Error
			for _, ct := range f.Counts {
				if ct.Index >= uint32(len(res.Interfaces)) {
					return res, c.protocol("counts of interface %d of %d", ct.Index, len(res.Interfaces))
				}
				s := &res.Stats[ct.Index]
				s.Received, s.Dropped = ct.Received, ct.KernelDropped
				res.AgentDropped[ct.Index] = ct.AgentDropped
			}
			return res, h.Flush()
		default:
			return res, c.protocol("unexpected message %T", m.Msg)
		}
	}
}

// deliverRecords hands the packed records b to h (whole, to a
// batchHandler), counting them captured, unless the capture was stopped:
// then they are only checked.
func deliverRecords(b []byte, res *CaptureResult, h CaptureHandler, stopped bool, pkt *pktout.Packet) error {
	// A loop, not parseRecords with a closure: this runs for every packet.
	it := recordIter{b: b, nifc: len(res.Interfaces)}
	var err error
	if bh, ok := h.(batchHandler); ok && !stopped {
		for it.next() {
			res.Stats[it.r.iface].Captured++
		}
		// The records before a malformed one, as Packet would have had
		// them.
		err = bh.records(b[:len(b)-len(it.b)])
	}
	for it.next() {
		if stopped {
			continue // checked, not delivered
		}
		r := &it.r
		*pkt = pktout.Packet{Interface: res.Interfaces[r.iface], Time: r.time, Length: int(r.length), Data: r.data, Outgoing: r.outgoing}
		if err = h.Packet(pkt); err == nil || errors.Is(err, capture.ErrStop) {
			res.Stats[r.iface].Captured++
		}
		if err != nil {
			break
		}
	}
	if it.err != nil {
		err = it.err
	}
	return err
}

// BlocksHandler is a CaptureHandler that writes pcapng: asking for
// PACKET_FORMAT_PCAPNG, it gets each message's enhanced packet blocks
// whole, once Capture has checked them (pktout.ReadEnhancedPacket against
// the Start interfaces and their snapshot lengths), instead of packet by
// packet. b aliases the message: the handler copies what it keeps.
type BlocksHandler interface {
	CaptureHandler
	EnhancedPackets(b []byte, packets uint64) error
}

// deliverBlocks is deliverRecords for pcapng enhanced packet blocks.
func deliverBlocks(b []byte, res *CaptureResult, h CaptureHandler, stopped bool, pkt *pktout.Packet) error {
	if bh, ok := h.(BlocksHandler); ok || stopped {
		captured := make([]uint64, len(res.Interfaces))
		whole, n, err := pktout.CheckEnhancedPackets(b, res.snaplens, captured)
		if stopped {
			return err // checked, not delivered
		}
		for i, c := range captured {
			res.Stats[i].Captured += c
		}
		if n > 0 {
			// The blocks before a malformed one, as Packet would have
			// had them.
			if werr := bh.EnhancedPackets(b[:whole], n); werr != nil {
				return werr
			}
		}
		return err
	}
	for rest := b; len(rest) > 0; {
		p, size, err := pktout.ReadEnhancedPacket(rest, len(res.Interfaces), maxRecordData)
		if err == nil && len(p.Data) > res.Interfaces[p.Interface].Snaplen {
			err = fmt.Errorf("%w: %d bytes of data, more than the interface's snapshot length %d", pktout.ErrBadBlock, len(p.Data), res.Interfaces[p.Interface].Snaplen)
		}
		if err != nil {
			return err
		}
		rest = rest[size:]
		*pkt = pktout.Packet{Interface: res.Interfaces[p.Interface], Time: p.Time, Length: int(p.Length), Data: p.Data}
		if err = h.Packet(pkt); err == nil || errors.Is(err, capture.ErrStop) {
			res.Stats[p.Interface].Captured++
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// stopOnDone asks the agent to stop the stream whose id comes on idc once
// ctx ends, and cancels the call StopGrace later, or at once if no id has
// come. The returned func ends the watch.
func (c *Client) stopOnDone(ctx context.Context, cancel func(), idc <-chan string) func() {
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		var id string
		select {
		case id = <-idc:
		default:
			cancel()
			return
		}
		sctx, scancel := context.WithTimeout(context.Background(), StopGrace)
		defer scancel()
		if _, err := c.api.Stop(sctx, &agentpb.StopRequest{Id: id}); err != nil {
			cancel()
			return
		}
		select {
		case <-done:
		case <-sctx.Done():
			cancel()
		}
	}()
	return func() { close(done) }
}

// batchHandler is a CaptureHandler (the merge's) that takes the records
// of a Packets message whole, once Capture has validated them, instead of
// packet by packet. records aliases the message: the handler copies what
// it keeps.
type batchHandler interface {
	records(b []byte) error
}

// remoteEnd is an ended part's reason as the agent said it; errors.Is
// matches capture.ErrNamespaceGone or ErrInterfaceGone as the agent's did.
type remoteEnd struct {
	msg  string
	kind error
}

func (e *remoteEnd) Error() string        { return e.msg }
func (e *remoteEnd) Is(target error) bool { return target == e.kind }

func startInterfaces(s *agentpb.Start) ([]*pktout.Interface, error) {
	if len(s.Interfaces) == 0 {
		return nil, errors.New("capture started with no interface")
	}
	ifcs := make([]*pktout.Interface, len(s.Interfaces))
	for i, p := range s.Interfaces {
		if p.Index != uint32(i) {
			return nil, errors.New("interfaces out of order")
		}
		if p.Snaplen == 0 || p.Snaplen > maxRecordData {
			return nil, errors.New("interface snaplen out of range")
		}
		ifcs[i] = interfaceFromPB(p)
	}
	return ifcs, nil
}
