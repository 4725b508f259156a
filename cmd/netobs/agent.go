package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netobs/netobs/netobs/agent"
	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/runtime"
	"github.com/netobs/netobs/nsjoin"
	"github.com/spf13/cobra"
)

func init() { register(newAgentCmd) }

// DefaultAgentSocket is where `netobs agent` listens without --socket.
const DefaultAgentSocket = "/run/netobs/agent.sock"

type agentFlags struct {
	socket       string
	listen       string
	maxStreams   int
	streamBuffer string
	allowRemote  bool
	tokenFile    string
}

func newAgentCmd(a *app) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent [--socket PATH] [--listen 127.0.0.1:PORT]",
		Short: "Serve capture, events, sockets, topo, ps and ns ls to remote clients over gRPC",
		Long: `agent serves netobs's operations on this host to clients that run
'netobs capture|events|sockets|topo|ps|ns ls --agent ADDR' elsewhere (or the
kubectl plugin): the same command, done here, with the same output there.

It listens on a unix socket (default ` + DefaultAgentSocket + `; its directory is
made 0700 and the socket 0600, so only root reaches it; a stale socket
file left by a killed agent is replaced, a live agent's is not) and, with
--listen, on a TCP address of this network namespace, which must be a
loopback address (in a pod, only a port-forward through the API server
reaches it) unless --allow-remote and --token-file are both given; then
every call must carry that token.

Bounded: at most --max-streams captures and event streams at once (one
more is refused: RESOURCE_EXHAUSTED), and at most --stream-buffer of
packets queued per capture for a client that reads slowly: beyond it the
agent drops packets and counts them ("dropped by agent" on the client).
A client that goes away stops its capture and frees its sockets and rings.

With --host-root, PIDs, ip netns names and container runtimes are looked
up in the host's /proc and /run mounted there (a DaemonSet pod).
SIGINT and SIGTERM stop it: every stream is ended and the socket removed.`,
		Example: `  netobs agent
  netobs agent --socket /tmp/a.sock --listen 127.0.0.1:7070
  netobs agent --host-root /host --listen 127.0.0.1:7070   # in a pod`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error { return runAgent(a, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.socket, "socket", DefaultAgentSocket, `unix socket to listen on ("" for none)`)
	fl.StringVar(&f.listen, "listen", "", "also listen on this TCP address, HOST:PORT with HOST a loopback address")
	fl.IntVar(&f.maxStreams, "max-streams", agent.DefaultMaxStreams, "most captures and event streams served at once")
	fl.StringVar(&f.streamBuffer, "stream-buffer", "8M", "most packet bytes queued per capture for a slow client (K, M, G suffixes)")
	fl.BoolVar(&f.allowRemote, "allow-remote", false, "allow a non-loopback --listen address (needs --token-file)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the token every call must carry (not readable by group or others)")
	return cmd
}

func runAgent(a *app, f agentFlags) error {
	if f.socket == "" && f.listen == "" {
		return usageErrorf("agent: nothing to listen on: give --socket or --listen")
	}
	if f.maxStreams < 1 || f.maxStreams > 10000 {
		return usageErrorf("agent: --max-streams %d out of range 1..10000", f.maxStreams)
	}
	buf, err := parseSize(f.streamBuffer)
	if err != nil || buf < agent.MinStreamBuffer || buf > 1<<30 {
		return usageErrorf("agent: --stream-buffer %q: want a size from %dK to 1G", f.streamBuffer, agent.MinStreamBuffer>>10)
	}
	var token string
	if f.tokenFile != "" {
		if token, err = readToken(f.tokenFile); err != nil {
			return usageErrorf("agent: --token-file: %v", err)
		}
	}
	var tcpAddr string
	if f.listen != "" {
		if tcpAddr, err = checkListen(f.listen, f.allowRemote, token != ""); err != nil {
			return err
		}
	}
	srv, err := agent.NewServer(agent.Config{Backend: backend{a}, MaxStreams: f.maxStreams, StreamBuffer: int(buf), Token: token})
	if err != nil {
		return err
	}
	g := srv.GRPCServer()
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	if f.socket != "" {
		l, err := listenUnix(f.socket)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		lns = append(lns, l)
		defer os.Remove(f.socket)
	}
	if tcpAddr != "" {
		l, err := net.Listen("tcp", tcpAddr)
		if err != nil {
			return fmt.Errorf("agent: listen %s: %w", tcpAddr, err)
		}
		lns = append(lns, l)
	}
	var names []string
	for _, l := range lns {
		names = append(names, l.Addr().Network()+" "+l.Addr().String())
	}
	fmt.Fprintf(a.stderr, "netobs: agent listening on %s (at most %d streams, %s buffer each)\n", strings.Join(names, " and "), f.maxStreams, f.streamBuffer)
	errc := make(chan error, len(lns))
	var wg sync.WaitGroup
	for _, l := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// srv.Listener also takes captures' raw packet streams,
			// which arrive on the same address.
			errc <- g.Serve(srv.Listener(l))
		}()
	}
	select {
	case <-a.ctx.Done():
		err = nil
	case err = <-errc:
	}
	// Stop cancels every stream; their handlers free what they hold.
	g.Stop()
	wg.Wait()
	lns = nil
	if err != nil {
		return fmt.Errorf("agent: serve: %w", err)
	}
	fmt.Fprintln(a.stderr, "netobs: agent stopped")
	return nil
}

// checkListen refuses a TCP address that is not a loopback one, unless
// remote access is allowed and a token set.
func checkListen(addr string, allowRemote, haveToken bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", usageErrorf("agent: --listen %q: want HOST:PORT (127.0.0.1:7070)", addr)
	}
	ip, err := netip.ParseAddr(host)
	if host == "localhost" {
		ip, err = netip.MustParseAddr("127.0.0.1"), nil
	}
	if err != nil {
		return "", usageErrorf("agent: --listen %q: HOST must be an IP address (127.0.0.1, ::1), not a name", addr)
	}
	if !ip.IsLoopback() {
		if !allowRemote || !haveToken {
			return "", usageErrorf("agent: --listen %q is not a loopback address: anyone who reaches it could capture this host's traffic; use 127.0.0.1 (and a port-forward or ssh tunnel), or give --allow-remote with --token-file", addr)
		}
	}
	return net.JoinHostPort(ip.String(), port), nil
}

func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%q is readable by group or others (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(b))
	if len(t) < 16 {
		return "", fmt.Errorf("%q holds a token of %d bytes; use at least 16 (head -c 32 /dev/urandom | base64)", path, len(t))
	}
	return t, nil
}

// listenUnix listens on path with the socket 0600 in a 0700 directory.
// A socket file there that nobody answers on is a dead agent's and is
// replaced; one an agent answers on, or any other file, is an error.
func listenUnix(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if filepath.Clean(path) == DefaultAgentSocket {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, err
		}
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket; remove it or give another --socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another agent is listening there", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%s: cannot tell whether an agent listens there: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	return l, os.Chmod(path, 0o600)
}

// backend is the agent's Backend: the CLI's own resolution and listings,
// run with the request's context and its notices as stderr.
type backend struct{ a *app }

func (b backend) with(ctx context.Context, notice io.Writer) *app {
	ra := *b.a
	ra.ctx, ra.stderr = ctx, notice
	return &ra
}

func (b backend) Namespaces(ctx context.Context, t nsjoin.Type) ([]agent.NamespaceInfo, error) {
	return listNamespaces(b.with(ctx, io.Discard), t)
}

func (b backend) Containers(ctx context.Context, rt string) ([]agent.ContainerInfo, error) {
	if rt != "" && !runtimeKnown(rt) {
		return nil, usageErrorf("ps: --runtime %q: want one of %s", rt, strings.Join(runtime.Runtimes, ", "))
	}
	return listContainers(b.with(ctx, io.Discard), rt)
}

func (b backend) OpenNetNS(ctx context.Context, ref string, notice io.Writer) (*nsjoin.NS, *runtime.Container, error) {
	return openNetNS(b.with(ctx, notice), ref)
}

func (b backend) CaptureTargets(ctx context.Context, args []string, dash int, selector string, notice io.Writer) ([]capture.Target, string, error) {
	return captureTargets(b.with(ctx, notice), args, dash, selector)
}

func (b backend) IsUsage(err error) bool { return isUsage(err) }

// addAgentFlag adds --agent and --agent-token-file to a command that can
// run through an agent.
func addAgentFlag(c *cobra.Command, addr *string) {
	c.Flags().StringVar(addr, "agent", "", "run on the host of the netobs agent at ADDR: a unix socket path, or HOST:PORT (a port-forward, an ssh tunnel)")
	c.Flags().StringVar(&agentTokenFile, "agent-token-file", "", "file holding the token the agent asks for (agent --token-file)")
}

// agentTokenFile is --agent-token-file; one command runs per process.
var agentTokenFile string

func agentToken() (string, error) {
	if agentTokenFile == "" {
		return "", nil
	}
	t, err := readToken(agentTokenFile)
	if err != nil {
		return "", usageErrorf("--agent-token-file: %v", err)
	}
	return t, nil
}

func dialAgent(a *app, cmd, addr string) (*agent.Client, error) {
	tok, err := agentToken()
	if err != nil {
		return nil, err
	}
	cl, err := agent.Dial(addr, tok)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return cl, nil
}

// agentError is how a command reports an agent's error: exit 2 for what
// the agent refused as a usage mistake, 1 otherwise.
func agentError(cmd string, err error) error {
	err = fmt.Errorf("%s: %w", cmd, err)
	if errors.Is(err, agent.ErrUsage) {
		return usageError{err}
	}
	return err
}
