package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/netobs/netobs/internal/termsafe"
	"github.com/netobs/netobs/netobs/attach"
	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/tapdev"
)

func init() { register(newAttachCmd) }

// defaultTxQueueLen is the transmit queue netobs gives its device: the
// kernel's 500 frames are under a millisecond at full rate, so a burst
// overflows before the reader is scheduled.
const defaultTxQueueLen = 65536

// exitGone is the status when the target namespace or the device went
// away while attached (output still flushed and valid).
const exitGone = 3

func newAttachCmd(a *app) *cobra.Command {
	var (
		tap, tun, persist, jsonOut, injectOnly bool
		readQueue                              bool
		cleanup                                bool
		name, mac, mirror, wfile, format, inj  string
		withEvents                             bool
		eventKinds                             string
		addrs, routes                          []string
		mtu, queues, txqlen                    int
		count                                  uint64
	)
	c := &cobra.Command{
		Use:   "attach NSREF --tap|--tun [flags]",
		Short: "Create a TAP/TUN device inside a namespace and read and write its frames from here",
		Long: `attach creates a TAP (Ethernet) or TUN (IP) device inside the network
namespace NSREF, configures it there, and from the host prints every frame
the namespace sends through it. Nothing is installed in the target. With
--mirror the device also sees the traffic of an existing interface there:
tc filters in front of the target's own (clsact, u32, mirred with control
"continue", so the target's filters still run), removed on exit. --inject
writes the frames of a pcap file into the namespace through the device; a
damaged file is refused before the device exists.

attach --cleanup NSREF removes what netobs processes killed with SIGKILL left
of their mirrors in NSREF (their tc filters, and a clsact qdisc they made
once no filter is left on it), and nothing else.

The device's frames are read through an AF_PACKET ring bound to it in
NSREF (no system call per frame), and the device drops them after the ring
saw them (a classic BPF filter on a --tap, an eBPF one on a --tun, which
needs CAP_BPF: without it a --tun's queue is read); --read-queue reads its
queue instead, as --persist devices always are.

Output: one line per frame (text, as netobs capture prints), --json, or
-w FILE as pcap with nanosecond timestamps (pcapng if FILE ends in .pcapng or
with --format pcapng, with frames read and dropped in an interface statistics
block); -w - writes to stdout, never to a terminal. Counts go to stderr.

Stops on -c COUNT (frames read, not injected), SIGINT, SIGTERM, SIGHUP or
SIGQUIT, the end of --inject-only, or when the namespace, the device or the
mirrored interface goes away. The device is removed unless --persist, the
tc rules always.
Exit status: 0 stopped by -c, a signal, the end of --inject-only or a
closed output pipe;
1 error; 2 usage; 3 the namespace, the device or the mirrored interface
went away; 128+N when signal N interrupts the start-up (a FIFO given to -w
or --inject that has no other end yet).`,
		Example: `  netobs attach $PID --tap --addr 10.9.0.1/24
  netobs attach lab1 --tap --mirror veth1 -w veth1.pcap
  netobs attach /proc/$PID/ns/net --tun --addr 10.9.0.1/24 --route 10.99.0.0/16 --json
  netobs attach lab2 --tap --addr 10.9.0.1/24 --inject veth1.pcap --inject-only
  netobs attach lab1 --tap --addr 10.9.0.1/24 --events
  netobs attach lab1 --cleanup      # after a netobs --mirror was killed with SIGKILL`,
		Args: exactArgs(1, "a namespace reference (NSREF)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cleanup {
				if cmd.Flags().NFlag() > 1 {
					return usageErrorf("attach: --cleanup takes no other flags")
				}
				return cleanupMirrors(a, args[0])
			}
			cfg := tapdev.Config{Name: name, MTU: mtu, Queues: queues, Persist: persist, Mirror: mirror, TxQueueLen: txqlen}
			switch {
			case tap && tun:
				return usageErrorf("attach: --tap and --tun exclude each other")
			case tap:
				cfg.Kind = tapdev.TAP
			case tun:
				cfg.Kind = tapdev.TUN
			default:
				return usageErrorf("attach: say --tap or --tun")
			}
			if cmd.Flags().Changed("mtu") && mtu == 0 {
				return usageErrorf("attach: --mtu 0: MTU out of range 68-65535")
			}
			if cmd.Flags().Changed("queues") && queues == 0 {
				return usageErrorf("attach: --queues 0: want 1-%d", tapdev.MaxQueues)
			}
			if txqlen < 1 {
				return usageErrorf("attach: --txqueuelen %d: want at least 1", txqlen)
			}
			if mac != "" {
				hw, err := net.ParseMAC(mac)
				if err != nil {
					return usageErrorf("attach: --mac %q: not a MAC address", mac)
				}
				cfg.MAC = hw
			}
			for _, s := range addrs {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return usageErrorf("attach: --addr %q: not an address with prefix length (like 10.0.0.1/24)", s)
				}
				cfg.Addrs = append(cfg.Addrs, p)
			}
			for _, s := range routes {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return usageErrorf("attach: --route %q: not a prefix (like 10.99.0.0/16)", s)
				}
				cfg.Routes = append(cfg.Routes, p)
			}
			if err := cfg.Validate(); err != nil {
				return usageErrorf("attach: %v", err)
			}

			fmtName := format
			if jsonOut {
				if format != "" && format != "json" {
					return usageErrorf("attach: --json and --format %s exclude each other", format)
				}
				fmtName = "json"
			}
			if fmtName == "" {
				switch {
				case wfile == "":
					fmtName = "text"
				case strings.HasSuffix(wfile, ".pcapng"):
					fmtName = "pcapng"
				default:
					fmtName = "pcap"
				}
			}
			f, err := attach.ParseFormat(fmtName)
			if err != nil {
				return usageErrorf("attach: --format: %v", err)
			}
			var kinds events.Kinds
			if withEvents || cmd.Flags().Changed("event-kinds") {
				if kinds, err = events.ParseKinds(eventKinds); err != nil {
					return usageErrorf("attach: --event-kinds: %v", err)
				}
			}
			if injectOnly && inj == "" {
				return usageErrorf("attach: --inject-only needs --inject FILE")
			}

			// Everything that can fail on bad input is checked before the
			// device exists, so a failure leaves nothing in the target.
			var out io.Writer = a.stdout
			removeOutput := func() {}
			if wfile != "" && wfile != "-" {
				_, statErr := os.Stat(wfile)
				file, err := openOutput(a.ctx, "attach", wfile)
				if err != nil {
					return err
				}
				defer file.Close()
				out = file
				if os.IsNotExist(statErr) {
					// A file this run made is removed again if attach
					// fails before any device exists: nothing left behind.
					removeOutput = func() { os.Remove(wfile) }
				}
			}
			if f.Binary() && termsafe.IsTerminal(out) {
				return usageErrorf("attach: refusing to write %s to a terminal: use -w FILE or redirect stdout", f)
			}
			var in *attach.InjectFile
			if inj != "" {
				// A FIFO blocks in open(2) until a writer comes, then in
				// reading the file header: both interruptible.
				in, err = interruptible(a.ctx, fmt.Sprintf("attach: --inject %q", inj), func() (*attach.InjectFile, error) {
					return attach.OpenInject(inj, cfg.Kind)
				}, func(in *attach.InjectFile) { in.Close() })
				if err != nil {
					removeOutput()
					if a.ctx.Err() != nil {
						return err
					}
					return fmt.Errorf("attach: %w", err)
				}
				defer in.Close()
			}
			if injectOnly {
				out = nil
			}

			// A closed output pipe must end netobs through its cleanup
			// (tc rules removed), not kill it: with SIGPIPE delivered to a
			// channel, writes fail with EPIPE instead.
			sigpipe := make(chan os.Signal, 1)
			signal.Notify(sigpipe, syscall.SIGPIPE)
			defer signal.Stop(sigpipe)

			ns, ctr, err := openNetNS(a, args[0])
			if err != nil {
				return fmt.Errorf("attach: %w", err)
			}
			label := ""
			if ctr != nil {
				label = ctr.Label()
			}
			defer ns.Close()
			res, err := attach.Run(a.ctx, attach.Options{
				Ref: args[0], NS: ns, Device: cfg, Output: out, Format: f, Count: count,
				Inject: in, InjectOnly: injectOnly, ReadQueue: readQueue, Log: a.stderr, Events: kinds,
				Label: label, Owner: containerOwner(ctr),
			})
			if res.Device != "" {
				stopped := res.Reason.String()
				if res.Detail != "" {
					stopped += " (" + res.Detail + ")"
				}
				if err != nil {
					stopped = "error"
				}
				fmt.Fprintf(a.stderr, "netobs: %d frames read, %d written, %d dropped by kernel; %s\n", res.Read, res.Written, res.Dropped, stopped)
			}
			if err != nil {
				if res.Device == "" {
					removeOutput()
				}
				return err
			}
			if res.Reason == attach.NamespaceGone || res.Reason == attach.DeviceGone || res.Reason == attach.MirrorGone {
				return exitStatus{exitGone, fmt.Sprintf("attach %s: %s: %s", args[0], res.Reason, res.Detail)}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.BoolVar(&tap, "tap", false, "create a TAP device (Ethernet frames)")
	fl.BoolVar(&tun, "tun", false, "create a TUN device (IP packets)")
	fl.StringVar(&name, "name", "", "device name in the target (default: the kernel picks tapN/tunN; %d allowed)")
	fl.StringArrayVar(&addrs, "addr", nil, "address with prefix length to give the device, IPv4 or IPv6 (repeatable)")
	fl.StringArrayVar(&routes, "route", nil, "prefix to route through the device in the target (repeatable)")
	fl.IntVar(&mtu, "mtu", 0, "device MTU (68-65535)")
	fl.StringVar(&mac, "mac", "", "MAC address of a TAP device")
	fl.StringVar(&mirror, "mirror", "", "mirror this interface's ingress and egress traffic into the device (tc clsact + mirred)")
	fl.IntVar(&queues, "queues", 1, "number of queues (more than 1: multiqueue device, one reader each)")
	fl.IntVar(&txqlen, "txqueuelen", defaultTxQueueLen, "device transmit queue length: frames the kernel holds for netobs before dropping (when it reads the queue: --persist, --read-queue, a --tun without CAP_BPF)")
	fl.BoolVar(&readQueue, "read-queue", false, "read the device's queue instead of an AF_PACKET ring on it (sees frames that skip the packet taps: pktgen, XDP redirects)")
	fl.BoolVar(&cleanup, "cleanup", false, "remove the --mirror tc filters of netobs processes that were killed (and the clsact qdiscs they made) from NSREF, then exit")
	fl.BoolVar(&persist, "persist", false, "leave the device in the target when netobs exits")
	fl.StringVarP(&wfile, "write", "w", "", "write frames to FILE (- for stdout) as pcap, or pcapng if FILE ends in .pcapng")
	fl.StringVar(&format, "format", "", "output format: text, json, pcap, pcapng (default text, or pcap with -w)")
	fl.BoolVar(&jsonOut, "json", false, "one JSON object per frame (same as --format json)")
	fl.Uint64VarP(&count, "count", "c", 0, "stop after COUNT frames read from the device (sent by the namespace; injected frames do not count)")
	fl.StringVar(&inj, "inject", "", "write the frames of this pcap/pcapng file into the namespace through the device")
	fl.BoolVar(&injectOnly, "inject-only", false, "stop when --inject is done, without reading frames")
	fl.BoolVar(&withEvents, "events", false, "interleave the namespace's netlink events (links, addresses, routes, ...) with the frames; on stderr beside pcap output")
	fl.StringVar(&eventKinds, "event-kinds", "link,addr,route,neigh,rule", "with --events: the kinds to report")
	return c
}

// cleanupMirrors is attach --cleanup: it removes what killed netobs
// processes left of their mirrors in the namespace ref.
func cleanupMirrors(a *app, ref string) error {
	ns, _, err := openNetNS(a, ref)
	if err != nil {
		return fmt.Errorf("attach --cleanup: %w", err)
	}
	defer ns.Close()
	removed, err := tapdev.Cleanup(ns)
	for _, r := range removed {
		fmt.Fprintf(a.stdout, "removed %s\n", r)
	}
	if err != nil {
		return fmt.Errorf("attach --cleanup: %w", err)
	}
	if len(removed) == 0 {
		fmt.Fprintf(a.stderr, "netobs: no stale netobs tc rules in %s\n", ref)
	}
	return nil
}
