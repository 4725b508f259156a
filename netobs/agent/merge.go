package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	protov2 "google.golang.org/protobuf/proto"

	"github.com/netobs/netobs/internal/termsafe"
	"github.com/netobs/netobs/netobs/agent/agentpb"
	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/pktout"
)

// MergeOptions tune CaptureMerged. The zero value is usable.
type MergeOptions struct {
	// Window is the reordering window: how long the merge waits for a
	// source that has sent nothing (no packet, no progress) before it
	// writes the other sources' packets without it. 0 means 2s.
	Window time.Duration
	// MaxHeld bounds the bytes of packets held for reordering; beyond it
	// the oldest held packet is written even if a slow source may still
	// send an older one. 0 means 64 MiB.
	MaxHeld int
	// Stderr receives the sources' notices and failures, one line each
	// naming the source; nil discards them.
	Stderr io.Writer
	// Count stops the whole capture after this many packets (0: none).
	Count uint64
}

// SourceResult is how one source's part of a merged capture ended.
type SourceResult struct {
	Name string
	// Interfaces are the source's interfaces as named in the merged
	// output (eth0@ns1@node-a), and their Stats and AgentDropped as
	// CaptureResult's: Captured counts what was written.
	Interfaces   []*pktout.Interface
	Stats        []pktout.Stats
	AgentDropped []uint64
	// Final is true if the agent sent its final counts.
	Final bool
	// Ended counts the source's interfaces whose part ended early.
	Ended int
	// Err is why the source failed or was left out; nil if it ran to
	// its end.
	Err error
}

// Totals adds up the source's interfaces: captured, received and dropped
// by the kernel, and dropped by the agent.
func (r *SourceResult) Totals() (st pktout.Stats, agentDropped uint64) {
	for i := range r.Stats {
		st.Captured += r.Stats[i].Captured
		st.Received += r.Stats[i].Received
		st.Dropped += r.Stats[i].Dropped
		agentDropped += r.AgentDropped[i]
	}
	return st, agentDropped
}

// CaptureMerged captures from several agents at once into one pcapng
// stream on w: one interface per (source, namespace, interface), named
// DEVICE@LABEL@SOURCE (eth0@pod:default/web@node-a), whose description
// starts with "node SOURCE" and goes on with the agent's (container, pod,
// namespace). Packets are merged by timestamp: a packet is written once
// every other live source has sent a later packet or a Progress watermark
// past it, or has been silent for Window; agents send a watermark at
// least every 100ms while idle, so the merge runs about 0.3s behind the
// traffic. Timestamps are each agent's clock: clocks that disagree by more
// than the window put packets out of order (pcapng allows it; tools sort).
//
// A source that fails (unreachable, refused, killed mid-capture) is named
// on opts.Stderr and left out; the others go on, and the file stays valid.
// Each source's request is req, or its own Request when set. The pcapng
// header is written once every source has started or failed; interface
// statistics blocks with each source's final counts end the file.
// CaptureMerged returns when every source has ended, ctx ends (every
// capture is cancelled and the file finished), or Count is reached. The
// error is nil even if sources failed (see the results), except when
// every source failed, a request was refused as invalid (errors.Is
// ErrUsage), or writing to w failed.
func CaptureMerged(ctx context.Context, sources []Source, req *agentpb.CaptureRequest, w io.Writer, opts MergeOptions) ([]SourceResult, error) {
	var ng *pktout.PcapngWriter
	res, err := CaptureMergedTo(ctx, sources, req, func(ifcs []*pktout.Interface) (capture.Handler, error) {
		var err error
		ng, err = pktout.NewPcapngWriter(w, ifcs, "netobs capture --agent")
		return ng, err
	}, opts)
	if ng != nil {
		var stats []pktout.Stats
		for _, r := range res {
			stats = append(stats, r.Stats...)
		}
		if werr := ng.WriteStats(stats); werr != nil && err == nil {
			err = werr
		}
	}
	return res, err
}

// CaptureMergedTo is CaptureMerged handing the merged packets to the
// handler that open returns for the merged interfaces (a pcapng writer, a
// summary writer), called once every source has started or failed.
func CaptureMergedTo(ctx context.Context, sources []Source, req *agentpb.CaptureRequest, open func([]*pktout.Interface) (capture.Handler, error), opts MergeOptions) ([]SourceResult, error) {
	if opts.Window <= 0 {
		opts.Window = 2 * time.Second
	}
	if opts.MaxHeld <= 0 {
		opts.MaxHeld = 64 << 20
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := &merger{opts: opts, in: make(chan item, 4*len(sources)), srcs: make([]*msource, len(sources))}
	var wg sync.WaitGroup
	for i, s := range sources {
		ms := &msource{i: i, res: SourceResult{Name: s.Name}, started: make(chan struct{})}
		m.srcs[i] = ms
		r := req
		if s.Request != nil {
			r = s.Request
		}
		if r.PacketFormat != agentpb.PacketFormat_PACKET_FORMAT_RECORDS {
			// The merge interleaves packed records (batchHandler).
			r = protov2.Clone(r).(*agentpb.CaptureRequest)
			r.PacketFormat = agentpb.PacketFormat_PACKET_FORMAT_RECORDS
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms.run(ctx, s, r, m.in)
		}()
	}
	go func() { wg.Wait(); close(m.in) }()
	err := m.run(ctx, cancel, open)
	cancel()
	for it := range m.in { // let every source goroutine end
		if it.done && m.out != nil {
			m.apply(it) // its final counts
		}
	}
	out := make([]SourceResult, len(m.srcs))
	for i, s := range m.srcs {
		out[i] = s.res
	}
	return out, err
}

// item is what a source goroutine hands the merger.
type item struct {
	src     int
	start   []*pktout.Interface // the source started (nil with err: it failed first)
	records []byte              // a batch of validated records
	mark    int64               // a Progress watermark
	notice  string
	ended   *remoteEndItem
	final   *CaptureResult
	err     error
	done    bool
}

type remoteEndItem struct {
	index  int
	reason error
}

type msource struct {
	i       int
	res     SourceResult
	started chan struct{}
	remote  []*pktout.Interface // the agent's interfaces
	// Merge state, owned by the merger goroutine.
	alive    bool
	batches  [][]byte
	off      int // offset into batches[0]
	head     record
	hasHead  bool
	mark     int64
	lastSeen time.Time
}

// run calls one agent and turns its stream into items.
func (s *msource) run(ctx context.Context, src Source, req *agentpb.CaptureRequest, in chan<- item) {
	// Sends block: the merger reads in until every source has ended,
	// also after ctx ends (a select on ctx.Done() here would drop, at
	// random, what the agents send after a stop, their final counts
	// included).
	send := func(it item) bool {
		it.src = s.i
		in <- it
		return true
	}
	c, err := New(src)
	if err != nil {
		send(item{err: err, done: true})
		return
	}
	defer c.Close()
	h := &sourceHandler{send: send}
	res, err := c.Capture(ctx, req, h)
	send(item{final: res, err: err, done: true})
}

// sourceHandler forwards one agent's stream to the merger, one item per
// Packets message (the records are validated by Capture already).
type sourceHandler struct {
	send  func(item) bool
	ifcs  []*pktout.Interface
	batch []byte
}

func (h *sourceHandler) Start(ifcs []*pktout.Interface) error {
	h.ifcs = ifcs
	if !h.send(item{start: ifcs}) {
		return context.Canceled
	}
	return nil
}

func (h *sourceHandler) Packet(p *pktout.Packet) error {
	h.batch = appendRecord(h.batch, uint32(p.Interface.ID), p.Outgoing, p.Time, p.Length, p.Head, p.Data)
	return nil
}

// records takes a batch whole (see batchHandler): the same bytes Packet
// would have appended one by one.
func (h *sourceHandler) records(b []byte) error {
	h.batch = append(h.batch, b...)
	return nil
}

func (h *sourceHandler) Flush() error {
	if len(h.batch) == 0 {
		return nil
	}
	b := h.batch
	h.batch = nil
	if !h.send(item{records: b}) {
		return context.Canceled
	}
	return nil
}

func (h *sourceHandler) Ended(ifc *pktout.Interface, reason error) {
	h.Flush()
	h.send(item{ended: &remoteEndItem{index: ifc.ID, reason: reason}})
}

func (h *sourceHandler) Notice(text string) { h.send(item{notice: text}) }

func (h *sourceHandler) Progress(wm int64) { h.send(item{mark: wm}) }

type merger struct {
	opts    MergeOptions
	in      chan item
	srcs    []*msource
	out     capture.Handler
	ifcs    []*pktout.Interface
	base    []int // first merged interface of each source
	held    int
	n       uint64
	last    int64
	late    uint64
	failed  int
	counted bool // Count reached
	// pkt is handed to out for each packet: one, not an allocation per
	// packet (out sees it only during the call).
	pkt pktout.Packet
}

func (m *merger) say(s *msource, format string, args ...any) {
	fmt.Fprintf(m.opts.Stderr, "netobs: %s: %s\n", termsafe.Escape(s.res.Name), termsafe.Escape(fmt.Sprintf(format, args...)))
}

func (m *merger) run(ctx context.Context, cancel func(), open func([]*pktout.Interface) (capture.Handler, error)) error {
	// Phase 1: every source starts or fails; items other than starts
	// and failures wait in order.
	var early []item
	pending := len(m.srcs)
	var usage error
	for pending > 0 {
		it, ok := <-m.in
		if !ok {
			break
		}
		s := m.srcs[it.src]
		switch {
		case it.start != nil:
			s.remote, s.alive, s.lastSeen = it.start, true, time.Now()
			pending--
		case it.done && s.remote == nil:
			s.res.Err = it.err
			if it.err == nil {
				s.res.Err = errors.New("capture ended before it started")
			}
			if errors.Is(it.err, ErrUsage) {
				usage = it.err
			}
			m.failed++
			m.say(s, "%v; left out of the capture", s.res.Err)
			pending--
		default:
			if it.notice != "" && s.remote == nil {
				m.say(s, "%s", it.notice)
				continue
			}
			early = append(early, it)
		}
	}
	if usage != nil {
		cancel()
		return usage
	}
	if m.failed == len(m.srcs) {
		return fmt.Errorf("capture: no agent could capture (%d of %d failed, see above)", m.failed, len(m.srcs))
	}
	for _, s := range m.srcs {
		m.base = append(m.base, len(m.ifcs))
		for _, r := range s.remote {
			ifc := *r
			ifc.ID = len(m.ifcs)
			ifc.Name = r.Name + "@" + s.res.Name
			ifc.Description = "node " + s.res.Name + ", " + r.Description
			m.ifcs = append(m.ifcs, &ifc)
			s.res.Interfaces = append(s.res.Interfaces, &ifc)
		}
		s.res.Stats = make([]pktout.Stats, len(s.remote))
		s.res.AgentDropped = make([]uint64, len(s.remote))
	}
	var err error
	if m.out, err = open(m.ifcs); err != nil {
		cancel()
		return err
	}
	for _, it := range early {
		if err := m.apply(it); err != nil {
			cancel()
			return err
		}
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	// On ctx's end (or Count reached) the sources ask their agents to
	// stop and still deliver what the agents send until their final
	// counts, as a local capture delivers what the kernel has handed over;
	// the loop ends when every source has ended.
	done := ctx.Done()
	for {
		if !m.counted {
			if err := m.drain(false); err != nil {
				cancel()
				return err
			}
			if m.opts.Count > 0 && m.n >= m.opts.Count {
				m.counted = true
				cancel()
			}
		}
		select {
		case it, ok := <-m.in:
			if !ok {
				return m.finish()
			}
			if err := m.apply(it); err != nil {
				cancel()
				return err
			}
		case <-tick.C:
			if err := m.out.Flush(); err != nil {
				cancel()
				return err
			}
		case <-done:
			done = nil
		}
	}
}

// finish writes every held packet, in order, and flushes.
func (m *merger) finish() error {
	if !m.counted {
		if err := m.drain(true); err != nil {
			return err
		}
	}
	if m.late > 0 {
		fmt.Fprintf(m.opts.Stderr, "netobs: %d packets written out of timestamp order (a source was late by more than the reordering window)\n", m.late)
	}
	return m.out.Flush()
}

func (m *merger) apply(it item) error {
	s := m.srcs[it.src]
	s.lastSeen = time.Now()
	switch {
	case it.notice != "":
		m.say(s, "%s", it.notice)
	case it.records != nil:
		if m.counted {
			return nil // Count reached: the rest is not written
		}
		s.batches = append(s.batches, it.records)
		m.held += len(it.records)
	case it.ended != nil:
		s.res.Ended++
		m.out.Ended(s.res.Interfaces[it.ended.index], it.ended.reason)
		m.say(s, "capture %s: %v; its part of the capture ended, the others go on", s.res.Interfaces[it.ended.index].Name, it.ended.reason)
	case it.done:
		s.alive = false
		if r := it.final; r != nil && r.Final {
			s.res.Final = true
			for i := range r.Stats {
				s.res.Stats[i].Received, s.res.Stats[i].Dropped = r.Stats[i].Received, r.Stats[i].Dropped
				s.res.AgentDropped[i] = r.AgentDropped[i]
			}
			if r.Reason == agentpb.EndReason_END_REASON_ERROR {
				s.res.Err = errors.New(r.Err)
				m.say(s, "capture failed: %s; its part ended, the others go on", r.Err)
			}
		}
		if it.err != nil && !errors.Is(it.err, context.Canceled) && s.res.Err == nil {
			s.res.Err = it.err
			m.say(s, "%v; its part of the capture ended, the file holds what it sent, the others go on", it.err)
		}
	default:
		if it.mark > s.mark {
			s.mark = it.mark
		}
	}
	return nil
}

// next makes s.head the source's next packet, if it has one queued.
func (s *msource) next() bool {
	if s.hasHead {
		return true
	}
	for len(s.batches) > 0 {
		b := s.batches[0][s.off:]
		if len(b) == 0 {
			s.batches, s.off = s.batches[1:], 0
			continue
		}
		// Validated by Client.Capture: a failure here is a bug.
		caplen := int(le32(b[20:]))
		it := recordIter{b: b[:recordHeader+caplen], nifc: len(s.remote)}
		it.next()
		s.head = it.r
		s.off += recordHeader + caplen
		s.hasHead = true
		if s.head.time > s.mark {
			s.mark = s.head.time
		}
		return true
	}
	return false
}

// drain writes every packet the window allows (all of them if all).
func (m *merger) drain(all bool) error {
	for {
		var best *msource
		for _, s := range m.srcs {
			if s.remote != nil && s.next() && (best == nil || s.head.time < best.head.time) {
				best = s
			}
		}
		if best == nil {
			return nil
		}
		if !all && m.held <= m.opts.MaxHeld {
			for _, s := range m.srcs {
				if s == best || !s.alive || s.hasHead || s.mark >= best.head.time || time.Since(s.lastSeen) > m.opts.Window {
					continue
				}
				return nil // s may still send an older packet
			}
		}
		r := &best.head
		if r.time < m.last {
			m.late++
		} else {
			m.last = r.time
		}
		m.pkt = pktout.Packet{Interface: best.res.Interfaces[r.iface], Time: r.time, Length: int(r.length), Data: r.data, Outgoing: r.outgoing}
		best.hasHead = false
		m.held -= recordHeader + len(r.data)
		best.res.Stats[r.iface].Captured++
		m.n++
		if err := m.out.Packet(&m.pkt); err != nil {
			return err
		}
		if m.opts.Count > 0 && m.n >= m.opts.Count {
			return nil
		}
	}
}
