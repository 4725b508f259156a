package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/netobs/netobs/internal/termsafe"
	"github.com/netobs/netobs/netobs/agent"
	"github.com/netobs/netobs/netobs/agent/agentpb"
	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/pktout"
)

// runRemoteCapture is capture --agent: the capture runs on the agents'
// hosts and is written here through the same writers as a local one.
func runRemoteCapture(a *app, f captureFlags, cfg capture.Config, args []string, dash int) error {
	tok, err := agentToken()
	if err != nil {
		return err
	}
	if dash < 0 {
		dash = -1
	}
	req := &agentpb.CaptureRequest{Args: args, Dash: int32(dash), Selector: f.selector, Interfaces: cfg.Interfaces,
		Snaplen: int32(cfg.Snaplen), BufferSize: int64(cfg.BufferSize), Immediate: cfg.Immediate, Count: uint64(f.count)}
	if f.write == "-" {
		if o, ok := a.stdout.(*os.File); ok && termsafe.IsTerminal(o) {
			return usageErrorf("capture: refusing to write binary capture data to a terminal (redirect stdout or use -w FILE)")
		}
	}
	out := &remoteOutput{a: a, f: f}
	defer out.close()
	if len(f.agents) == 1 {
		return remoteCaptureOne(a, f, req, tok, out)
	}
	return remoteCaptureMany(a, f, req, tok, out)
}

// remoteOutput makes the handler for -w or the summary lines once the
// interfaces are known.
type remoteOutput struct {
	a    *app
	f    captureFlags
	file *os.File
	ng   *pktout.PcapngWriter
	h    capture.Handler
}

func (o *remoteOutput) open(ifcs []*pktout.Interface, appName string) (capture.Handler, error) {
	f := o.f
	if f.write == "" {
		o.h = pktout.NewSummaryWriter(o.a.stdout, f.json)
		return o.h, nil
	}
	if f.format == "pcap" && len(ifcs) > 1 {
		return nil, usageErrorf("capture: --format pcap holds exactly one interface, this capture has %d (namespaces × interfaces); use --format pcapng", len(ifcs))
	}
	var w io.Writer = o.a.stdout
	if f.write != "-" {
		file, err := openOutput(o.a.ctx, "capture", f.write)
		if err != nil {
			return nil, err
		}
		o.file = file
		if termsafe.IsTerminal(file) {
			return nil, usageErrorf("capture: refusing to write binary capture data to a terminal (%s)", f.write)
		}
		w = file
	}
	var err error
	if f.format == "pcap" {
		o.h, err = pktout.NewPcapWriter(w, ifcs[0])
	} else {
		o.ng, err = pktout.NewPcapngWriter(w, ifcs, appName)
		o.h = o.ng
	}
	if err != nil {
		return nil, fmt.Errorf("capture: write %s: %w", f.write, err)
	}
	return o.h, nil
}

// finish writes the statistics blocks and closes the file.
func (o *remoteOutput) finish(stats []pktout.Stats) error {
	var werr error
	if o.ng != nil {
		werr = o.ng.WriteStats(stats)
	}
	if o.file != nil {
		if err := o.file.Close(); err != nil && werr == nil {
			werr = err
		}
		o.file = nil
	}
	return werr
}

func (o *remoteOutput) close() {
	if o.file != nil {
		o.file.Close()
	}
}

// remoteHandler is the CLI's handler for one agent: countingHandler over
// the output, made at Start.
type remoteHandler struct {
	*countingHandler
	out *remoteOutput
}

func (h *remoteHandler) Start(ifcs []*pktout.Interface) error {
	w, err := h.out.open(ifcs, "netobs capture")
	if err != nil {
		return err
	}
	h.countingHandler.Handler = w
	h.parts = len(ifcs)
	var names []string
	for _, ifc := range ifcs {
		names = append(names, fmt.Sprintf("%s (%s)", termsafe.Escape(ifc.Name), ifc.LinkType))
	}
	fmt.Fprintf(h.stderr, "netobs: capturing on %s, snapshot length %d bytes\n", strings.Join(names, ", "), ifcs[0].Snaplen)
	return nil
}

// EnhancedPackets writes the agent's pcapng blocks, checked by the
// client, to the pcapng output as they are (agent.BlocksHandler).
func (h *remoteHandler) EnhancedPackets(b []byte, packets uint64) error {
	if h.out.ng == nil {
		return errors.New("capture: pcapng blocks for an output that is not pcapng")
	}
	if err := h.out.ng.WriteEnhancedPackets(b, packets); err != nil {
		return err
	}
	h.n += packets
	return nil
}

func (h *remoteHandler) Notice(text string) { fmt.Fprintln(h.stderr, termsafe.Escape(text)) }

func remoteCaptureOne(a *app, f captureFlags, req *agentpb.CaptureRequest, tok string, out *remoteOutput) error {
	name, addr := splitAgent(f.agents[0])
	cl, err := agent.New(agent.AddrSource(name, addr, tok))
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	defer cl.Close()
	h := &remoteHandler{countingHandler: &countingHandler{limit: uint64(f.count), stderr: a.stderr}, out: out}
	if f.write != "" && f.format == "pcapng" && f.count == 0 {
		// The agent sends the file's own packet blocks: they are copied
		// to it, not written again packet by packet. (-c counts packets
		// one by one: it keeps the records.)
		req.PacketFormat = agentpb.PacketFormat_PACKET_FORMAT_PCAPNG
	}
	res, runErr := cl.Capture(a.ctx, req, h)
	var ue usageError
	if errors.As(runErr, &ue) {
		return runErr
	}
	if res == nil {
		if a.ctx.Err() != nil && runErr != nil && !errors.Is(runErr, agent.ErrUsage) {
			return startInterrupted(a.ctx, "capture")
		}
		return agentError("capture", runErr)
	}
	werr := out.finish(res.Stats)
	printCaptureStats(a.stderr, res.Interfaces, res.Stats)
	var agentDropped uint64
	for _, d := range res.AgentDropped {
		agentDropped += d
	}
	fmt.Fprintf(a.stderr, "%d %s dropped by agent\n", agentDropped, plural(agentDropped))
	if w, ok := h.Handler.(interface{ Written() uint64 }); ok && (runErr != nil || werr != nil) {
		fmt.Fprintf(a.stderr, "%d %s written to %s\n", w.Written(), plural(w.Written()), f.write)
	}
	if runErr != nil {
		return agentError("capture", runErr)
	}
	if werr != nil {
		return fmt.Errorf("capture: write %s: %w", f.write, werr)
	}
	if res.Reason == agentpb.EndReason_END_REASON_ERROR {
		return fmt.Errorf("capture: agent %s: %s", f.agents[0], res.Err)
	}
	if h.ended == len(res.Stats) {
		return exitStatus{code: 1, msg: "capture: every part ended early (see above)"}
	}
	if h.ended > 0 {
		return exitStatus{code: 1, msg: fmt.Sprintf("capture: %d of %d parts ended early (see above); the others were captured to the end", h.ended, len(res.Stats))}
	}
	return nil
}

func remoteCaptureMany(a *app, f captureFlags, req *agentpb.CaptureRequest, tok string, out *remoteOutput) error {
	var srcs []agent.Source
	for _, spec := range f.agents {
		name, addr := splitAgent(spec)
		srcs = append(srcs, agent.AddrSource(name, addr, tok))
	}
	opts := agent.MergeOptions{Stderr: a.stderr, Count: uint64(f.count)}
	res, runErr := agent.CaptureMergedTo(a.ctx, srcs, req, func(ifcs []*pktout.Interface) (capture.Handler, error) {
		h, err := out.open(ifcs, "netobs capture --agent")
		if err == nil {
			var names []string
			for _, ifc := range ifcs {
				names = append(names, termsafe.Escape(ifc.Name))
			}
			fmt.Fprintf(a.stderr, "netobs: capturing on %s\n", strings.Join(names, ", "))
		}
		return h, err
	}, opts)
	var ue usageError
	if errors.As(runErr, &ue) {
		return runErr
	}
	if out.h == nil {
		return agentError("capture", runErr)
	}
	var stats []pktout.Stats
	var ifcs []*pktout.Interface
	failed, ended := 0, 0
	for _, r := range res {
		stats = append(stats, r.Stats...)
		ifcs = append(ifcs, r.Interfaces...)
		if r.Err != nil {
			failed++
		}
		ended += r.Ended
	}
	werr := out.finish(stats)
	printCaptureStats(a.stderr, ifcs, stats)
	for _, r := range res {
		st, dropped := r.Totals()
		state := "to the end"
		if r.Err != nil {
			state = "failed: " + termsafe.Escape(r.Err.Error())
		}
		fmt.Fprintf(a.stderr, "agent %s: %d captured, %d received by filter, %d dropped by kernel, %d dropped by agent; %s\n",
			termsafe.Escape(r.Name), st.Captured, st.Received, st.Dropped, dropped, state)
	}
	if runErr != nil {
		return agentError("capture", runErr)
	}
	if werr != nil {
		return fmt.Errorf("capture: write %s: %w", f.write, werr)
	}
	if failed > 0 {
		return exitStatus{code: 1, msg: fmt.Sprintf("capture: %d of %d agents failed (see above); the others were captured to the end", failed, len(res))}
	}
	if ended > 0 {
		return exitStatus{code: 1, msg: fmt.Sprintf("capture: %d parts ended early (see above); the others were captured to the end", ended)}
	}
	return nil
}

// splitAgent reads --agent [NAME=]ADDR: NAME (letters, digits, ".", "-",
// "_") labels the agent's interfaces and counts; it defaults to ADDR.
func splitAgent(spec string) (name, addr string) {
	if n, a, ok := strings.Cut(spec, "="); ok && n != "" && strings.Trim(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == "" {
		return n, a
	}
	return spec, spec
}
