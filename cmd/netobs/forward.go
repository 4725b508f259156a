package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netobs/netobs/netobs/forward"
	"github.com/netobs/netobs/netobs/nsnet"
	"github.com/spf13/cobra"
)

func init() { register(newForwardCmd) }

type forwardOpts struct {
	udp, reverse, verbose bool
	udpIdle, dialTimeout  time.Duration
	halfClose             time.Duration
	maxSessions           int
}

func newForwardCmd(a *app) *cobra.Command {
	var o forwardOpts
	c := &cobra.Command{
		Use:   "forward NSREF LISTEN TARGET",
		Short: "Forward TCP or UDP between the host and a network namespace",
		Long: `forward listens on the host at LISTEN and relays every connection to TARGET
inside the network namespace NSREF, where the connection is made from a
socket created in that namespace: a service bound to 127.0.0.1 inside a
container becomes reachable from the host. With --reverse it listens inside
the namespace and connects from the host.

LISTEN and TARGET are [ADDRESS:]PORT; without an address (PORT or :PORT) they
mean 127.0.0.1. Use 0.0.0.0:PORT to listen on every IPv4 address (IPv4 only,
as for socat), [::]:PORT on every IPv6 and IPv4 address.
Addresses inside the namespace must be numeric: host names would be resolved
by the host. Port 0 listens on a free port; the line on stderr says which.

TCP: many connections at once, each relayed both ways with half-close passed
on. Once one side has ended its stream, the connection is closed when the
other sends nothing for --half-close-timeout (default 60s, like a proxy's
read timeout: socat's 0.5 s -t would cut a service that answers a
half-closed request slowly; 0 waits for ever). Data is spliced between the
sockets through a pipe per direction, closed with its connection (4 fds per
open connection, none kept after). UDP (--udp): a session per client address, ended after --udp-timeout
without traffic. Failures to reach the target are reported on stderr, one
line each, and the client's connection is closed; forward goes on serving.
It stops on SIGINT, SIGTERM, SIGHUP or SIGQUIT, and with an error when the namespace goes
away (its process exits or its name is deleted).`,
		Example: `  netobs forward lab1 8080 80                 # host 127.0.0.1:8080 -> 127.0.0.1:80 in netns lab1
  netobs forward $PID 0.0.0.0:5353 53 --udp     # UDP into the netns of process $PID
  netobs forward lab1 --reverse 3128 127.0.0.1:3128  # inside lab1 127.0.0.1:3128 -> the host's proxy`,
		Args: exactArgs(3, "NSREF, LISTEN and TARGET"),
		RunE: func(c *cobra.Command, args []string) error {
			return runForward(a, args[0], args[1], args[2], o)
		},
	}
	f := c.Flags()
	f.BoolVar(&o.udp, "udp", false, "forward UDP datagrams instead of TCP connections")
	f.BoolVar(&o.reverse, "reverse", false, "listen inside the namespace and connect from the host")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "print a line on stderr for every connection or UDP session")
	f.DurationVar(&o.udpIdle, "udp-timeout", 60*time.Second, "end a UDP session after this long without traffic")
	f.DurationVar(&o.dialTimeout, "dial-timeout", 10*time.Second, "give up connecting to TARGET after this long")
	f.DurationVar(&o.halfClose, "half-close-timeout", forward.DefaultHalfCloseTimeout, "after one side of a TCP connection ends its stream, close the connection when the other sends nothing for this long (0: never)")
	f.IntVar(&o.maxSessions, "max-sessions", 1024, "most UDP sessions at once; datagrams from further clients are dropped")
	return c
}

// defaultLoopback turns PORT and :PORT into 127.0.0.1:PORT: forward never
// exposes a port on every address unless asked to.
func defaultLoopback(s string) string {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		return "127.0.0.1:" + s
	}
	if strings.HasPrefix(s, ":") {
		return "127.0.0.1" + s
	}
	return s
}

func runForward(a *app, ref, listenArg, targetArg string, o forwardOpts) error {
	proto := "tcp"
	if o.udp {
		proto = "udp"
	}
	listenAddr, targetAddr := defaultLoopback(listenArg), defaultLoopback(targetArg)
	if o.udpIdle <= 0 || o.dialTimeout <= 0 || o.maxSessions <= 0 {
		return usageErrorf("forward: --udp-timeout, --dial-timeout and --max-sessions must be positive")
	}
	if o.halfClose < 0 {
		return usageErrorf("forward: --half-close-timeout %v is negative (0 waits for ever)", o.halfClose)
	}
	// Refuse bad input before anything is created.
	nsSide, hostSide, nsWhat := targetAddr, listenAddr, "TARGET"
	if o.reverse {
		nsSide, hostSide, nsWhat = listenAddr, targetAddr, "LISTEN"
	}
	if err := nsnet.CheckAddress(proto, nsSide, o.reverse); err != nil {
		return usageErrorf("forward: %s %q (inside the namespace): %v", nsWhat, nsSide, err)
	}
	// The host side may name a host (it resolves in the host), but its
	// port must be a number; a target port cannot be 0.
	_, p, err := net.SplitHostPort(hostSide)
	if err != nil {
		return usageErrorf("forward: %q: %v", hostSide, err)
	}
	minPort := uint64(0)
	if o.reverse {
		minPort = 1
	}
	if n, err := strconv.ParseUint(p, 10, 16); err != nil || n < minPort {
		return usageErrorf("forward: %q: port %q is not a number from %d to 65535", hostSide, p, minPort)
	}

	ns, _, err := openNetNS(a, ref)
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	defer ns.Close()
	if !o.reverse {
		// Every connection is dialled from inside the namespace: find out
		// now whether it can be entered (CAP_SYS_ADMIN; nothing to enter
		// for "self"), instead of resetting every connection later.
		if err := ns.Do(func() error { return nil }); err != nil {
			return fmt.Errorf("forward: %w", err)
		}
	}

	var (
		dial     forward.DialFunc
		ln       net.Listener
		pc       net.PacketConn
		from, to string
	)
	if !o.reverse {
		network := hostNetwork(proto, listenAddr)
		if o.udp {
			pc, err = net.ListenPacket(network, listenAddr)
		} else {
			ln, err = net.Listen(network, listenAddr)
		}
		if err != nil {
			return fmt.Errorf("forward: listen on the host: %w", hint(err))
		}
		dial = func(ctx context.Context) (net.Conn, error) {
			return nsnet.DialContext(ctx, ns, proto, targetAddr)
		}
		to = targetAddr + " in " + ref
	} else {
		// Resolve a host-side name once now, so a typo fails at start.
		host, _, _ := net.SplitHostPort(targetAddr)
		if host != "" && net.ParseIP(host) == nil {
			if _, err := net.DefaultResolver.LookupHost(a.ctx, host); err != nil {
				return fmt.Errorf("forward: TARGET %s: %w", targetAddr, err)
			}
		}
		if o.udp {
			pc, err = nsnet.ListenPacket(ns, proto, listenAddr)
		} else {
			ln, err = nsnet.Listen(ns, proto, listenAddr)
		}
		if err != nil {
			return fmt.Errorf("forward: %w", err)
		}
		var d net.Dialer
		dial = func(ctx context.Context) (net.Conn, error) {
			return d.DialContext(ctx, proto, targetAddr)
		}
		to = targetAddr + " on the host"
	}
	if ln != nil {
		from = ln.Addr().String()
	} else {
		from = pc.LocalAddr().String()
	}
	if o.reverse {
		from += " in " + ref
	} else {
		from += " on the host"
	}
	fmt.Fprintf(a.stderr, "forward: %s %s -> %s\n", proto, from, to)

	ctx, cancel := context.WithCancelCause(a.ctx)
	defer cancel(nil)
	stopWatch := watchNamespace(ctx, ns, func(err error) { cancel(err) })
	defer stopWatch()

	halfClose := o.halfClose
	if halfClose == 0 {
		halfClose = -1 // never, in forward.Config's terms
	}
	var mu sync.Mutex // one line at a time on stderr
	cfg := forward.Config{
		Dial:             dial,
		DialTimeout:      o.dialTimeout,
		UDPIdle:          o.udpIdle,
		MaxSessions:      o.maxSessions,
		HalfCloseTimeout: halfClose,
		Done: func(c forward.Conn) {
			if !o.verbose && c.Err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			printConn(a.stderr, proto, c)
		},
	}
	var st forward.Stats
	if o.udp {
		st, err = forward.ServeUDP(ctx, pc, cfg)
	} else {
		st, err = forward.ServeTCP(ctx, ln, cfg)
	}
	what := "connections"
	if o.udp {
		what = "sessions"
	}
	fmt.Fprintf(a.stderr, "forward: %d %s (%d failed), %d bytes to the target, %d bytes back", st.Conns, what, st.Failed, st.Up, st.Down)
	if o.udp {
		fmt.Fprintf(a.stderr, ", %d datagrams dropped", st.Dropped)
	}
	fmt.Fprintln(a.stderr)
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	if cause := context.Cause(ctx); cause != nil && a.ctx.Err() == nil {
		return fmt.Errorf("forward: %w", cause)
	}
	return nil
}

func printConn(w io.Writer, proto string, c forward.Conn) {
	status, why := "closed", ""
	if c.Err != nil {
		status, why = "failed", ": "+oneLine(c.Err.Error())
	} else if c.HalfCloseTimeout {
		why = " (half-close timeout)"
	}
	target := "-"
	if c.Target != nil {
		target = c.Target.String()
	}
	fmt.Fprintf(w, "forward: %s #%d %s -> %s %s after %s, %d bytes up, %d down%s\n",
		proto, c.ID, c.Client, target, status, c.Duration.Round(time.Millisecond), c.Up, c.Down, why)
}

// hostNetwork is the network to listen on the host with: an IPv4 address
// (0.0.0.0 included) means IPv4 only, as for socat, where Go's "tcp" would
// make 0.0.0.0 a dual-stack socket on [::].
func hostNetwork(proto, addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return proto
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() {
		return proto + "4"
	}
	return proto
}

// hint adds the fix to host-side listen errors the issue calls out.
func hint(err error) error {
	s := err.Error()
	switch {
	case strings.Contains(s, "permission denied"):
		return fmt.Errorf("%w (ports below 1024 need CAP_NET_BIND_SERVICE)", err)
	case strings.Contains(s, "no such host"), strings.Contains(s, "server misbehaving"):
		return fmt.Errorf("%w (LISTEN must be an address of this host)", err)
	}
	return err
}
