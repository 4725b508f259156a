package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"

	"github.com/netobs/netobs/netobs/agent/agentpb"
	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/netobs/pktout"
	"github.com/netobs/netobs/netobs/sockdiag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/status"
)

var (
	// ErrUsage: the agent refused the request as the command line would
	// refuse it as a usage mistake (bad reference syntax, filter, kind).
	ErrUsage = errors.New("invalid request")
	// ErrUnreachable: the agent could not be reached, or went away.
	ErrUnreachable = errors.New("agent unreachable")
	// ErrBusy: the agent serves its maximum of streams already.
	ErrBusy = errors.New("agent busy")
	// ErrDenied: the agent refused the token.
	ErrDenied = errors.New("agent refused the token")
	// ErrProtocol: the agent sent something that breaks the protocol.
	ErrProtocol = errors.New("agent protocol violation")
)

// Error is an error of a call to an agent: the agent's address, and the
// cause, which errors.Is matches against ErrUsage, ErrUnreachable, ErrBusy,
// ErrDenied or ErrProtocol where one applies.
type Error struct {
	Addr string
	Msg  string
	Kind error // one of the sentinels, or nil
	// Err is the cause when it is known: the error of Source.Dial when the
	// agent was unreachable because the dial failed (a port-forward that
	// RBAC refused, say), which errors.As then finds.
	Err error
}

func (e *Error) Error() string { return "agent " + e.Addr + ": " + e.Msg }

// Is matches the error's kind.
func (e *Error) Is(target error) bool { return e.Kind != nil && target == e.Kind }

// Unwrap is the cause, or nil.
func (e *Error) Unwrap() error { return e.Err }

// Source is an agent to call: Name labels its part of a merged capture
// (a node's name), Dial connects to it. Dial is called for each
// connection: gRPC's, and each capture's raw packet stream.
type Source struct {
	Name string
	Dial func(ctx context.Context) (net.Conn, error)
	// Token, if not empty, is sent with every call.
	Token string
	// Request, if not nil, replaces CaptureMerged's request for this
	// source (the kubectl plugin names different pods on each node).
	Request *agentpb.CaptureRequest
	// NoRawStream keeps a capture's packets on the gRPC call instead of
	// taking them on a raw stream of their own (a second Dial) where the
	// agent offers one.
	NoRawStream bool
}

// AddrSource is the Source for an address as --agent takes it: a unix
// socket path (anything with a "/"), or host:port over TCP.
func AddrSource(name, addr, token string) Source {
	network := "tcp"
	if strings.Contains(addr, "/") {
		network = "unix"
	}
	return Source{Name: name, Token: token, Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// Client is a connection to one agent. Its methods may be called from
// several goroutines at once; Close ends every call in flight.
type Client struct {
	name  string
	conn  *grpc.ClientConn
	api   agentpb.AgentClient
	dial  func(ctx context.Context) (net.Conn, error)
	noRaw bool
	// dialErr is the error of the last Source.Dial, nil once one
	// succeeds: gRPC reports a failed dial as Unavailable with its text
	// only, and wrap puts the error itself back.
	dialErr atomic.Pointer[error]
}

// Dial returns a client of the agent at addr (see AddrSource).
func Dial(addr, token string) (*Client, error) { return New(AddrSource(addr, addr, token)) }

// New returns a client of src. No connection is made until the first call.
func New(src Source) (*Client, error) {
	c := &Client{name: src.Name, dial: src.Dial, noRaw: src.NoRawStream}
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		conn, err := src.Dial(ctx)
		if err != nil {
			c.dialErr.Store(&err)
		} else {
			c.dialErr.Store(nil)
		}
		return conn, err
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dial),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(4 << 20)),
		grpc.WithInitialWindowSize(window), grpc.WithInitialConnWindowSize(window),
		grpc.WithReadBufferSize(256 << 10), grpc.WithWriteBufferSize(64 << 10),
		experimental.WithBufferPool(new(framePool)),
	}
	if src.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds(src.Token)))
	}
	// passthrough: the name is only a label, the dialer above connects.
	conn, err := grpc.NewClient("passthrough:///netobs-agent", opts...)
	if err != nil {
		return nil, &Error{Addr: src.Name, Msg: err.Error()}
	}
	c.conn, c.api = conn, agentpb.NewAgentClient(conn)
	return c, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// tokenCreds sends the token as "authorization: Bearer TOKEN". It is
// allowed over plain connections: the agent listens on a unix socket or
// loopback, and --allow-remote is the operator's choice.
type tokenCreds string

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}
func (t tokenCreds) RequireTransportSecurity() bool { return false }

// wrap turns a gRPC error into an *Error with its kind.
func (c *Client) wrap(err error) error {
	if err == nil {
		return nil
	}
	var ae *Error
	if errors.As(err, &ae) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return &Error{Addr: c.name, Msg: err.Error()}
	}
	e := &Error{Addr: c.name, Msg: st.Message()}
	switch st.Code() {
	case codes.InvalidArgument:
		e.Kind = ErrUsage
	case codes.Unavailable:
		e.Kind = ErrUnreachable
		if d := c.dialErr.Load(); d != nil {
			// The dial's own error says what to do (a refused
			// port-forward names the RBAC rule to ask for).
			e.Msg, e.Err = "unreachable: "+(*d).Error(), *d
			break
		}
		e.Msg = "unreachable or gone: " + e.Msg + " (is netobs agent running and listening there?)"
	case codes.ResourceExhausted:
		e.Kind = ErrBusy
	case codes.Unauthenticated:
		e.Kind = ErrDenied
	case codes.Internal:
		e.Kind = ErrProtocol
	}
	return e
}

func (c *Client) protocol(format string, args ...any) error {
	return &Error{Addr: c.name, Msg: fmt.Sprintf(format, args...), Kind: ErrProtocol}
}

// Namespaces is `ns ls` on the agent's host; typ "" lists every type.
func (c *Client) Namespaces(ctx context.Context, typ string) ([]NamespaceInfo, error) {
	resp, err := c.api.ListNamespaces(ctx, &agentpb.ListNamespacesRequest{Type: typ})
	if err != nil {
		return nil, c.wrap(err)
	}
	out := make([]NamespaceInfo, 0, len(resp.Namespaces))
	for _, p := range resp.Namespaces {
		n, err := namespaceFromPB(p)
		if err != nil {
			return nil, c.protocol("%v", err)
		}
		out = append(out, n)
	}
	return out, nil
}

// Containers is `ps` on the agent's host; runtime "" lists every runtime.
func (c *Client) Containers(ctx context.Context, runtime string) ([]ContainerInfo, error) {
	resp, err := c.api.ListContainers(ctx, &agentpb.ListContainersRequest{Runtime: runtime})
	if err != nil {
		return nil, c.wrap(err)
	}
	out := make([]ContainerInfo, 0, len(resp.Containers))
	for _, p := range resp.Containers {
		ctr, err := containerFromPB(p)
		if err != nil {
			return nil, c.protocol("%v", err)
		}
		out = append(out, ContainerInfo{Container: ctr, NetnsID: p.NetnsId, Inode: p.NetnsInode, HostNetns: p.HostNetns})
	}
	return out, nil
}

// SocketsResult is what Sockets returns.
type SocketsResult struct {
	// Netns is net:[INODE] of the namespace on the agent's host.
	Netns string
	// Label and Owner name the container, if the reference was one.
	Label   string
	Owner   *pktout.Owner
	Sockets []sockdiag.Socket
	// Notices are warnings the command prints on stderr.
	Notices []string
}

// Sockets is `sockets NSREF` on the agent's host.
func (c *Client) Sockets(ctx context.Context, nsref string, o sockdiag.Options) (*SocketsResult, error) {
	resp, err := c.api.Sockets(ctx, &agentpb.SocketsRequest{Nsref: nsref, Tcp: o.TCP, Udp: o.UDP, Listening: o.Listening})
	if err != nil {
		return nil, c.wrap(err)
	}
	r := &SocketsResult{Netns: resp.Netns, Label: resp.Label, Owner: ownerFromPB(resp.Owner), Notices: resp.Notices}
	for _, p := range resp.Sockets {
		s, err := socketFromPB(p)
		if err != nil {
			return nil, c.protocol("%v", err)
		}
		r.Sockets = append(r.Sockets, s)
	}
	return r, nil
}

// EventsHandler receives what Events streams, from one goroutine.
type EventsHandler struct {
	// Ready is called once the namespaces are subscribed.
	Ready func(namespaces int, kinds string)
	// Event is called for each event; an error ends the call.
	Event func(ev events.Event) error
	// Notice is called with each line the command prints on stderr.
	Notice func(text string)
}

// EventsResult holds the final counts of Events.
type EventsResult struct {
	Events, Initial, Resyncs, Forged uint64
	// AgentDropped counts events the agent dropped because they were
	// read too slowly.
	AgentDropped uint64
	// Err is the watcher's error on the agent, empty if none.
	Err string
}

// Events is `events` on the agent's host. It returns when the agent ends
// the stream (count reached, watcher failed) or, as Capture, StopGrace
// after ctx ends at the latest; the result is nil when the stream ended
// before its final counts.
func (c *Client) Events(ctx context.Context, req *agentpb.EventsRequest, h EventsHandler) (*EventsResult, error) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	idc := make(chan string, 1)
	defer c.stopOnDone(ctx, cancel, idc)()
	st, err := c.api.Events(sctx, req)
	if err != nil {
		return nil, c.wrap(err)
	}
	for {
		m, err := st.Recv()
		if err == io.EOF {
			return nil, c.protocol("stream ended without final counts")
		}
		if err != nil {
			return nil, c.wrap(err)
		}
		switch x := m.Msg.(type) {
		case *agentpb.EventsMessage_Ready:
			select {
			case idc <- x.Ready.Id:
			default:
			}
			if h.Ready != nil {
				h.Ready(int(x.Ready.Namespaces), x.Ready.Kinds)
			}
		case *agentpb.EventsMessage_Notice:
			if h.Notice != nil {
				h.Notice(x.Notice.Text)
			}
		case *agentpb.EventsMessage_Event:
			if err := h.Event(eventFromPB(x.Event)); err != nil {
				return nil, err
			}
		case *agentpb.EventsMessage_Final:
			f := x.Final
			return &EventsResult{Events: f.Events, Initial: f.Initial, Resyncs: f.Resyncs, Forged: f.Forged, AgentDropped: f.AgentDropped, Err: f.Error}, nil
		default:
			return nil, c.protocol("unexpected message %T", m.Msg)
		}
	}
}
