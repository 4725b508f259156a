package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netobs/netobs/internal/termsafe"
	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/pktout"
	"github.com/netobs/netobs/netobs/runtime"
	"github.com/netobs/netobs/nsjoin"
	"github.com/spf13/cobra"
)

func init() { register(newCaptureCmd) }

type captureFlags struct {
	ifaces    []string
	write     string
	format    string
	count     int64
	snaplen   int
	immediate bool
	buffer    string
	json      bool
	selector  string
	agents    []string
}

func newCaptureCmd(a *app) *cobra.Command {
	var f captureFlags
	cmd := &cobra.Command{
		Use:   "capture NSREF... [-l SELECTOR] [flags] [-- FILTER EXPRESSION...]",
		Short: "Capture packets inside one or many namespaces to pcap/pcapng",
		Long: `capture opens an AF_PACKET socket inside each namespace and writes what
they capture as one stream: a pcapng file with one interface per
(namespace, interface), named like eth0@NAME (or eth0@INODE for a namespace
without an ip-netns name), or one line per packet on stdout (like tcpdump -n,
or JSON with --json) when -w is not given.

The filter is a tcpdump expression (pcap-filter(7)). Put it after "--"; without
"--", the arguments after the first that do not name a namespace are taken
as the filter. Statistics (captured, received by filter, dropped by kernel)
are printed on stderr at the end, and written into pcapng files.

Exit status: 0 when stopped by SIGINT/SIGTERM or -c, 1 on a failure or when a
namespace or interface went away during the capture (the others go on and
the file stays valid), 2 on a usage mistake (a bad filter expression
included), 128+N when signal N (SIGINT, SIGTERM) interrupts the start-up:
while a filter compiles or -w waits for a FIFO's reader. When the disk
fills, the file is cut back to its last whole packet and a line on stderr
says how many packets it holds.

Containers and pods are NSREFs too (docker:NAME, pod:NAMESPACE/NAME, cri:ID,
containerd:NAMESPACE/ID, see netobs --help). A pod glob in quotes ('pod:default/web-*') and
-l SELECTOR (label selector on the runtimes' Docker, podman, CRI and containerd labels:
app=web,tier!=db) expand to every running match, each its own interfaces in
the one output; a namespace named twice is captured once.

With --agent ADDR the capture runs on the host of that netobs agent (see
netobs agent --help) and is written here, with the same output, counts and
exit status; a line "N packets dropped by agent" says how many the agent
dropped because this end read too slowly. With several --agent, every
NSREF (and -l) is resolved on every agent and the packets of all of them
are merged by timestamp into one output, each interface named
DEVICE@LABEL@NAME (eth0@ns1@node-a) for --agent NAME=ADDR (NAME defaults
to ADDR), per-agent counts on stderr. An
agent that fails, at the start or midway (killed, unreachable, a reference
it cannot resolve), is named on stderr and left out; the others go on, the
file stays valid, and the exit status is 1. See README "Remote and
cluster" for the reordering window.`,
		Example: `  netobs capture lab1 -i veth1 -w lab1.pcapng -- tcp port 80
  netobs capture lab1 lab2 $PID -w all.pcapng           # -i any in each
  netobs capture lab1 -i veth1 -w - --immediate | tshark -r -
  netobs capture /proc/$PID/ns/net -c 10 --json -- icmp
  netobs capture 'pod:default/web-*' -w web.pcapng      # pods web-0, web-1... of namespace default
  netobs capture -l app=web -w web.pcapng -- tcp port 80  # containers and pods labelled app=web
  netobs capture --agent /run/netobs/agent.sock lab1 -w lab1.pcapng   # on the agent's host
  netobs capture --agent a=127.0.0.1:7070 --agent b=127.0.0.1:7071 lab1 -w both.pcapng`,
		Args: func(c *cobra.Command, args []string) error {
			if f.selector != "" {
				return nil
			}
			if len(args) == 0 || c.ArgsLenAtDash() == 0 {
				return usageErrorf("%sneeds at least one NSREF (see %s --help)", where(c), c.CommandPath())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return runCapture(a, c, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVarP(&f.ifaces, "interface", "i", nil, `interface to capture on in each namespace, or "any" (default any); repeat or separate with commas for several`)
	fl.StringVarP(&f.write, "write", "w", "", `write packets to FILE ("-" for stdout) instead of printing a line per packet`)
	fl.StringVar(&f.format, "format", "pcapng", "file format: pcapng, or pcap (one interface only)")
	fl.Int64VarP(&f.count, "count", "c", 0, "stop after this many packets (0: until interrupted)")
	fl.IntVarP(&f.snaplen, "snaplen", "s", capture.DefaultSnaplen, fmt.Sprintf("bytes kept of each packet, 1..%d (0: default)", capture.MaxSnaplen))
	fl.BoolVar(&f.immediate, "immediate", false, "hand packets over as they arrive and flush after each (low latency)")
	fl.StringVarP(&f.buffer, "buffer", "B", "", "ring size per socket: a number of KiB like tcpdump -B, or with a K, M or G suffix (default 4M)")
	fl.BoolVar(&f.json, "json", false, "print one JSON object per packet instead of a text line (when not writing a file)")
	fl.StringVarP(&f.selector, "selector", "l", "", "also capture in every running container and pod whose runtime labels match (KEY=VALUE,KEY!=VALUE,KEY,!KEY)")
	fl.StringArrayVar(&f.agents, "agent", nil, "capture on the host of the netobs agent at [NAME=]ADDR (unix socket path or HOST:PORT); repeat to capture on several hosts into one merged output")
	fl.StringVar(&agentTokenFile, "agent-token-file", "", "file holding the token the agents ask for (agent --token-file)")
	return cmd
}

func runCapture(a *app, c *cobra.Command, f captureFlags, args []string) error {
	cfg := capture.Config{Snaplen: f.snaplen, Immediate: f.immediate}
	if f.snaplen < 0 || f.snaplen > capture.MaxSnaplen {
		return usageErrorf("capture: snaplen %d out of range (1..%d, 0 for the default)", f.snaplen, capture.MaxSnaplen)
	}
	if f.count < 0 {
		return usageErrorf("capture: count %d is negative", f.count)
	}
	if f.format != "pcapng" && f.format != "pcap" {
		return usageErrorf("capture: unknown format %q (want pcapng or pcap)", f.format)
	}
	if f.format == "pcap" && f.write == "" {
		return usageErrorf("capture: --format applies to -w; without -w packets are printed as lines")
	}
	if f.json && f.write != "" {
		return usageErrorf("capture: --json prints packets instead of writing them; use it without -w")
	}
	if f.buffer != "" {
		n, err := parseSize(f.buffer)
		if err != nil {
			return usageErrorf("capture: --buffer %s: %v", f.buffer, err)
		}
		if n < capture.MinBufferSize || n > 1<<30 {
			return usageErrorf("capture: --buffer %s out of range (64K..1G)", f.buffer)
		}
		cfg.BufferSize = int(n)
	}
	if c.Flags().Changed("interface") {
		ifaces, err := parseInterfaces(f.ifaces)
		if err != nil {
			return err
		}
		cfg.Interfaces = ifaces
	}
	if len(cfg.Interfaces) > 1 {
		for _, i := range cfg.Interfaces {
			if i == capture.AnyInterface {
				return usageErrorf("capture: -i any already captures every interface; do not combine it with %v", cfg.Interfaces)
			}
		}
	}

	if len(f.agents) > 0 {
		return runRemoteCapture(a, f, cfg, args, c.ArgsLenAtDash())
	}
	targets, filter, err := captureTargets(a, args, c.ArgsLenAtDash(), f.selector)
	defer func() {
		for _, t := range targets {
			t.NS.Close()
		}
	}()
	if err != nil {
		return err
	}
	cfg.Filter = filter
	nifc := len(targets) * max(1, len(cfg.Interfaces))
	if f.format == "pcap" && nifc > 1 {
		return usageErrorf("capture: --format pcap holds exactly one interface, this capture has %d (namespaces × interfaces); use --format pcapng", nifc)
	}
	var out *os.File
	if f.write == "-" {
		o, ok := a.stdout.(*os.File)
		if ok && termsafe.IsTerminal(o) {
			return usageErrorf("capture: refusing to write binary capture data to a terminal (redirect stdout or use -w FILE)")
		}
		out = o
	}

	cp, err := capture.OpenContext(a.ctx, targets, cfg)
	if err != nil {
		if a.ctx.Err() != nil {
			return startInterrupted(a.ctx, "capture")
		}
		if errors.Is(err, capture.ErrFilter) {
			if len(args) > 1 && c.ArgsLenAtDash() < 0 {
				return usageError{fmt.Errorf("%w (if %q names a namespace, it does not exist; put the filter after --)", err, strings.Fields(filter)[0])}
			}
			return usageError{err}
		}
		return err
	}
	defer cp.Close()

	var h capture.Handler
	var ng *pktout.PcapngWriter
	var file *os.File
	switch {
	case f.write == "":
		h = pktout.NewSummaryWriter(a.stdout, f.json)
	default:
		var w io.Writer
		if f.write == "-" {
			if out != nil {
				w = out
			} else {
				w = a.stdout
			}
		} else {
			file, err = openOutput(a.ctx, "capture", f.write)
			if err != nil {
				return err
			}
			defer file.Close()
			if termsafe.IsTerminal(file) {
				return usageErrorf("capture: refusing to write binary capture data to a terminal (%s)", f.write)
			}
			w = file
		}
		if f.format == "pcap" {
			h, err = pktout.NewPcapWriter(w, cp.Interfaces()[0])
		} else {
			ng, err = pktout.NewPcapngWriter(w, cp.Interfaces(), "netobs capture")
			h = ng
		}
		if err != nil {
			return fmt.Errorf("capture: write %s: %w", f.write, err)
		}
	}

	var names []string
	for _, ifc := range cp.Interfaces() {
		names = append(names, fmt.Sprintf("%s (%s)", ifc.Name, ifc.LinkType))
	}
	fmt.Fprintf(a.stderr, "netobs: capturing on %s, snapshot length %d bytes\n", strings.Join(names, ", "), cp.Interfaces()[0].Snaplen)

	ch := &countingHandler{Handler: h, limit: uint64(f.count), stderr: a.stderr, parts: len(cp.Interfaces()), targets: targets,
		moved: func(t capture.Target) bool { return containerMoved(a, t) }}
	stopLive := func() {}
	if se, ok := a.stderr.(*os.File); ok && f.write != "" && termsafe.IsTerminal(se) {
		stopLive = liveCounter(se, cp)
	}
	runErr := cp.Run(a.ctx, ch)
	stopLive()

	stats := cp.Stats()
	var werr error
	if ng != nil {
		werr = ng.WriteStats(stats)
	}
	if file != nil {
		if err := file.Close(); err != nil && werr == nil {
			werr = err
		}
	}
	printCaptureStats(a.stderr, cp.Interfaces(), stats)
	if w, ok := h.(interface{ Written() uint64 }); ok && (runErr != nil || werr != nil) {
		// A failed write (a full disk) leaves the file cut back to its
		// last whole packet: say what it holds.
		fmt.Fprintf(a.stderr, "%d %s written to %s\n", w.Written(), plural(w.Written()), f.write)
	}
	if runErr != nil {
		return runErr
	}
	if werr != nil {
		return fmt.Errorf("capture: write %s: %w", f.write, werr)
	}
	if ch.ended == len(stats) {
		return exitStatus{code: 1, msg: "capture: every part ended early (see above)"}
	}
	if ch.ended > 0 {
		return exitStatus{code: 1, msg: fmt.Sprintf("capture: %d of %d parts ended early (see above); the others were captured to the end", ch.ended, len(stats))}
	}
	return nil
}

// parseInterfaces checks the -i values (each may be a comma-separated
// list): each must be a name the kernel could give an interface, given once.
func parseInterfaces(vals []string) ([]string, error) {
	given := strings.Join(vals, ",")
	if len(vals) == 0 {
		return nil, usageErrorf("capture: -i %q: empty interface name (leave -i out, or use -i any, for every interface)", given)
	}
	var out []string
	seen := map[string]bool{}
	for _, v := range vals {
		name := strings.TrimSpace(v)
		if err := checkIfName(name); err != nil {
			return nil, usageErrorf("capture: -i %q: %v", given, err)
		}
		if seen[name] {
			return nil, usageErrorf("capture: -i %q: interface %q given twice", given, name)
		}
		seen[name] = true
		out = append(out, name)
	}
	return out, nil
}

// checkIfName applies the kernel's rules for interface names
// (dev_valid_name): 1 to 15 bytes, not "." or "..", no "/", ":" or space.
func checkIfName(name string) error {
	switch {
	case name == "":
		return errors.New("empty interface name (leave -i out, or use -i any, for every interface)")
	case len(name) > 15:
		return fmt.Errorf("interface name %q is %d bytes, longer than the kernel's 15", name, len(name))
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\v\f\r"):
		return fmt.Errorf("%q cannot be an interface name", name)
	}
	return nil
}

// openOutput creates or truncates the file -w names, in a way SIGINT and
// SIGTERM interrupt: opening a FIFO blocks until a reader opens it.
func openOutput(ctx context.Context, cmd, path string) (*os.File, error) {
	f, err := interruptible(ctx, fmt.Sprintf("%s: open %q", cmd, path), func() (*os.File, error) {
		return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644) // os.OpenFile sets O_CLOEXEC itself
	}, func(f *os.File) { f.Close() })
	if err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return f, err
}

// captureTargets opens the NSREFs at the start of args and returns the rest
// as the filter expression. Without "--" the first argument is always an
// NSREF and the filter starts at the first later one that is not.
func captureTargets(a *app, args []string, dash int, selector string) ([]capture.Target, string, error) {
	var targets []capture.Target
	refs, rest := args, []string(nil)
	if dash >= 0 {
		refs, rest = args[:dash], args[dash:]
	}
	add := func(ref string, ns *nsjoin.NS, ctr *runtime.Container) {
		for _, t := range targets {
			if nsjoin.Same(t.NS, ns) {
				fmt.Fprintf(a.stderr, "netobs: capture: %s is the same namespace as %s (%s); capturing it once\n", termsafe.Quote(ref), t.NS.Ref(), ns)
				ns.Close()
				return
			}
		}
		targets = append(targets, containerTarget(ns, ctr))
	}
	for i, ref := range refs {
		nss, ctrs, err := openNetNSAll(a, ref)
		if err != nil {
			if dash < 0 && (i > 0 || selector != "") && (errors.Is(err, nsjoin.ErrNotFound) || errors.Is(err, os.ErrNotExist)) {
				rest = refs[i:]
				break
			}
			return targets, "", fmt.Errorf("capture: %w", err)
		}
		for j, ns := range nss {
			add(ref, ns, ctrs[j])
		}
	}
	if selector != "" {
		nss, ctrs, err := openSelected(a, selector)
		if err != nil {
			return targets, "", fmt.Errorf("capture: %w", err)
		}
		for j, ns := range nss {
			add(ctrs[j].Label(), ns, ctrs[j])
		}
	}
	return targets, strings.Join(rest, " "), nil
}

// countingHandler stops after -c packets and reports ended parts.
type countingHandler struct {
	capture.Handler
	n, limit uint64
	ended    int
	parts    int
	stderr   io.Writer
	targets  []capture.Target
	// moved reports whether the container of a target is no longer
	// running in the target's namespace, as its runtime says now.
	moved func(capture.Target) bool
}

func (h *countingHandler) Packet(p *capture.Packet) error {
	if err := h.Handler.Packet(p); err != nil {
		return err
	}
	h.n++
	if h.limit > 0 && h.n >= h.limit {
		return capture.ErrStop
	}
	return nil
}

func (h *countingHandler) Ended(ifc *capture.Interface, reason error) {
	h.ended++
	rest := ""
	if h.ended < h.parts {
		rest = ", the others go on"
	}
	hint := ""
	if errors.Is(reason, capture.ErrNamespaceGone) || errors.Is(reason, capture.ErrInterfaceGone) {
		for _, t := range h.targets {
			o := t.Owner
			if o == nil || o.Runtime == "cri" || t.NS.String() != ifc.Namespace {
				continue
			}
			// Docker, podman and containerd make a new network namespace
			// when a container starts again; a pod's outlives its
			// containers. podman removes the container's interfaces
			// before its namespace goes, so an interface that went away
			// is asked about: the runtime no longer puts the container in
			// this namespace.
			if errors.Is(reason, capture.ErrNamespaceGone) || (h.moved != nil && h.moved(t)) {
				hint = fmt.Sprintf(" (%s container %s was stopped or restarted; a restarted container has a new network namespace: capture %s again)",
					o.Runtime, termsafe.Quote(o.Container), termsafe.Quote(t.Label))
			}
		}
	}
	fmt.Fprintf(h.stderr, "netobs: capture %s: %v; its part of the capture ended%s%s\n", ifc.Name, reason, rest, hint)
	if errors.Is(reason, capture.ErrNamespaceGone) {
		// Holding the handle would keep the namespace, and the devices
		// in it, alive until netobs exits.
		for _, t := range h.targets {
			if t.NS.String() == ifc.Namespace {
				t.NS.Close()
			}
		}
	}
	h.Handler.Ended(ifc, reason)
}

func printCaptureStats(w io.Writer, ifcs []*capture.Interface, stats []capture.Stats) {
	var tot capture.Stats
	for i, st := range stats {
		if len(stats) > 1 {
			fmt.Fprintf(w, "%s: %d captured, %d received by filter, %d dropped by kernel\n", ifcs[i].Name, st.Captured, st.Received, st.Dropped)
		}
		tot.Captured += st.Captured
		tot.Received += st.Received
		tot.Dropped += st.Dropped
	}
	fmt.Fprintf(w, "%d %s captured\n%d %s received by filter\n%d %s dropped by kernel\n",
		tot.Captured, plural(tot.Captured), tot.Received, plural(tot.Received), tot.Dropped, plural(tot.Dropped))
}

func plural(n uint64) string {
	if n == 1 {
		return "packet"
	}
	return "packets"
}

// liveCounter rewrites one line on the terminal every second until the
// returned function is called, which erases it.
func liveCounter(tty *os.File, cp *capture.Capture) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(tty, "\r\033[K")
				return
			case <-t.C:
				var tot capture.Stats
				for _, st := range cp.Stats() {
					tot.Captured += st.Captured
					tot.Dropped += st.Dropped
				}
				fmt.Fprintf(tty, "\r\033[KGot %d (%d dropped by kernel)", tot.Captured, tot.Dropped)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// parseSize reads a ring size: a bare number is KiB, as for tcpdump -B.
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := int64(1 << 10)
	switch {
	case strings.HasSuffix(t, "K"):
		t = t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("not a size (want e.g. 4096, 512K, 4M)")
	}
	if n > (1<<40)/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}

// containerMoved reports whether the container of t, resolved again by its
// label, is not running or is in another network namespace than t's.
func containerMoved(a *app, t capture.Target) bool {
	ns, _, err := runtime.Open(a.ctx, t.Label, a.runtimeOptions())
	if err != nil {
		return errors.Is(err, runtime.ErrNotRunning) || errors.Is(err, runtime.ErrNotFound)
	}
	defer ns.Close()
	return ns.ID() != t.NS.ID()
}
