package agent

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netobs/netobs/netobs/agent/agentpb"
	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/netobs/runtime"
	"github.com/netobs/netobs/netobs/sockdiag"
	"github.com/netobs/netobs/nsjoin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Backend is what the agent does on its host that the CLI also does:
// resolving NSREFs (containers included) and listing. `netobs agent`
// passes the CLI's own functions, so a request means exactly what the same
// command line means on the agent's host. Notices are the lines the
// command would print on stderr; they travel to the client.
type Backend interface {
	// Namespaces lists namespaces of type t (0: every type), as ns ls.
	Namespaces(ctx context.Context, t nsjoin.Type) ([]NamespaceInfo, error)
	// Containers lists containers, as ps; runtime "" means every runtime.
	Containers(ctx context.Context, runtime string) ([]ContainerInfo, error)
	// OpenNetNS opens the network namespace ref names; the container is
	// nil for a reference that is not one.
	OpenNetNS(ctx context.Context, ref string, notice io.Writer) (*nsjoin.NS, *runtime.Container, error)
	// CaptureTargets opens the namespaces of a capture command line's
	// arguments (dash: position of "--", or -1) and selector, and returns
	// the filter expression. The caller closes the targets' namespaces,
	// also when an error is returned.
	CaptureTargets(ctx context.Context, args []string, dash int, selector string, notice io.Writer) ([]capture.Target, string, error)
	// IsUsage reports whether err is the caller's mistake (a bad
	// reference syntax, selector...): the client exits 2 for it.
	IsUsage(err error) bool
}

// Config configures a Server.
type Config struct {
	// Backend resolves references and lists; required.
	Backend Backend
	// MaxStreams bounds the streams (captures, event watches) served at
	// once; one more is refused with RESOURCE_EXHAUSTED. 0 means
	// DefaultMaxStreams.
	MaxStreams int
	// StreamBuffer bounds the bytes of packets queued per capture stream
	// for a client that reads slowly; beyond it packets are dropped and
	// counted (agent_dropped). A raw stream holds at most coalesceBytes
	// more while it gathers a write. 0 means DefaultStreamBuffer.
	StreamBuffer int
	// Token, if not empty, must come with every call as metadata
	// "authorization: Bearer TOKEN".
	Token string
}

const (
	// DefaultMaxStreams is Config.MaxStreams's default.
	DefaultMaxStreams = 16
	// DefaultStreamBuffer is Config.StreamBuffer's default: 8 MiB per
	// stream, so 16 streams hold at most 128 MiB of packets.
	DefaultStreamBuffer = 8 << 20
	// MinStreamBuffer is the smallest StreamBuffer: one batch of records.
	MinStreamBuffer = batchBytes + maxRecordData + recordHeader
	// eventQueue bounds the events queued per stream.
	eventQueue = 4096
	// batchBytes is how many bytes of records a Packets message carries
	// before it is sent (one packet may take it past that). A whole
	// message stays under 1 MiB, the size of gRPC's largest pooled buffer.
	batchBytes = 512 << 10
	// window is gRPC's flow-control window per stream and connection.
	window = 4 << 20
	// progressEvery is how often an idle capture stream says how far it
	// has come (Progress), so that a merging client need not wait for it.
	progressEvery = 100 * time.Millisecond
	// coalesceBytes and coalesceWait: a raw stream's batches are written
	// together once this many bytes are held, or this long after the
	// first. In a 64-byte flood whose bytes came at its pace (bench/
	// sockfloor -pace), writes of 2 MiB cost the sender 40 % and the
	// receiver 12 % less CPU than writes of 512 KiB; the wait bounds what
	// that adds to a packet's delay, next to the ring's block timeout.
	coalesceBytes = 2 << 20
	coalesceWait  = 50 * time.Millisecond
)

// Server serves the agent API. Make it with NewServer and register it with
// Register; its interceptors (ServerOptions) enforce the token and the
// stream limit.
type Server struct {
	agentpb.UnimplementedAgentServer
	cfg     Config
	streams atomic.Int64 // streams being served

	rawOK atomic.Bool // serving through Listener: captures may offer raw streams

	mu      sync.Mutex
	stops   map[string]context.CancelFunc // guarded by mu: Stop's targets
	tickets map[ticket]*rawOffer          // guarded by mu: raw streams offered
}

// register makes a stream stoppable by Stop; the returned func forgets it.
func (s *Server) register(stop context.CancelFunc) (string, func()) {
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	s.mu.Lock()
	if s.stops == nil {
		s.stops = map[string]context.CancelFunc{}
	}
	s.stops[id] = stop
	s.mu.Unlock()
	return id, func() {
		s.mu.Lock()
		delete(s.stops, id)
		s.mu.Unlock()
	}
}

// Stop implements agentpb.AgentServer.
func (s *Server) Stop(ctx context.Context, req *agentpb.StopRequest) (*agentpb.StopResponse, error) {
	s.mu.Lock()
	stop := s.stops[req.Id]
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	return &agentpb.StopResponse{Found: stop != nil}, nil
}

// NewServer checks cfg and returns a Server.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("agent: no backend")
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.StreamBuffer == 0 {
		cfg.StreamBuffer = DefaultStreamBuffer
	}
	if cfg.MaxStreams < 1 {
		return nil, errors.New("agent: MaxStreams must be at least 1")
	}
	if cfg.StreamBuffer < MinStreamBuffer {
		return nil, errors.New("agent: StreamBuffer smaller than one batch")
	}
	return &Server{cfg: cfg}, nil
}

// GRPCServer returns a grpc.Server with s registered and its interceptors
// installed. Serve it on as many listeners as wanted; GracefulStop or Stop
// it to end (Stop cancels every stream, which frees what they hold).
func (s *Server) GRPCServer() *grpc.Server {
	g := grpc.NewServer(grpc.UnaryInterceptor(s.unary), grpc.StreamInterceptor(s.stream),
		grpc.MaxRecvMsgSize(1<<20), grpc.WaitForHandlers(true),
		// Large flow-control windows and buffers: packet batches are
		// up to 768 KiB, and gRPC's 64 KiB defaults cost a round trip each.
		grpc.InitialWindowSize(window), grpc.InitialConnWindowSize(window),
		grpc.WriteBufferSize(256<<10), grpc.ReadBufferSize(64<<10),
		// Packet batches go out without being copied into a marshal
		// buffer; the bytes on the wire are protobuf's.
		grpc.ForceServerCodecV2(captureCodec{}))
	agentpb.RegisterAgentServer(g, s)
	return g
}

// Streams is the number of streams being served now.
func (s *Server) Streams() int { return int(s.streams.Load()) }

func (s *Server) authorize(ctx context.Context) error {
	if s.cfg.Token == "" {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		got, ok := strings.CutPrefix(v, "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1 {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, "agent: missing or wrong token")
}

func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.authorize(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.authorize(ss.Context()); err != nil {
		return err
	}
	if n := s.streams.Add(1); n > int64(s.cfg.MaxStreams) {
		s.streams.Add(-1)
		return status.Errorf(codes.ResourceExhausted, "agent: %d streams already served (--max-streams %d)", n-1, s.cfg.MaxStreams)
	}
	defer s.streams.Add(-1)
	return h(srv, ss)
}

// statusOf turns a backend or library error into a status: usage mistakes
// are InvalidArgument (exit 2 on the client), a cancelled call Canceled,
// anything else Unknown (exit 1).
func (s *Server) statusOf(ctx context.Context, err error) error {
	var ue usageErr
	switch {
	case ctx.Err() != nil:
		return status.Error(codes.Canceled, err.Error())
	case errors.As(err, &ue), s.cfg.Backend.IsUsage(err), errors.Is(err, capture.ErrFilter), errors.Is(err, events.ErrUnknownKind), errors.Is(err, events.ErrOptions):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// notices collects the lines a command prints on stderr.
type notices struct {
	mu    sync.Mutex
	lines []string
}

func (n *notices) Write(b []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		n.lines = append(n.lines, l)
	}
	return len(b), nil
}

func (n *notices) take() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.lines
	n.lines = nil
	return l
}

// ListNamespaces implements agentpb.AgentServer.
func (s *Server) ListNamespaces(ctx context.Context, req *agentpb.ListNamespacesRequest) (*agentpb.ListNamespacesResponse, error) {
	var t nsjoin.Type
	if req.Type != "" {
		var err error
		if t, err = nsjoin.ParseType(req.Type); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	infos, err := s.cfg.Backend.Namespaces(ctx, t)
	if err != nil {
		return nil, s.statusOf(ctx, err)
	}
	resp := &agentpb.ListNamespacesResponse{}
	for i := range infos {
		resp.Namespaces = append(resp.Namespaces, namespaceToPB(&infos[i]))
	}
	return resp, nil
}

// ListContainers implements agentpb.AgentServer.
func (s *Server) ListContainers(ctx context.Context, req *agentpb.ListContainersRequest) (*agentpb.ListContainersResponse, error) {
	cs, err := s.cfg.Backend.Containers(ctx, req.Runtime)
	if err != nil {
		return nil, s.statusOf(ctx, err)
	}
	resp := &agentpb.ListContainersResponse{}
	for i := range cs {
		p := containerToPB(&cs[i].Container)
		p.NetnsId, p.NetnsInode, p.HostNetns = cs[i].NetnsID, cs[i].Inode, cs[i].HostNetns
		resp.Containers = append(resp.Containers, p)
	}
	return resp, nil
}

// Sockets implements agentpb.AgentServer.
func (s *Server) Sockets(ctx context.Context, req *agentpb.SocketsRequest) (*agentpb.SocketsResponse, error) {
	var nt notices
	ns, ctr, err := s.cfg.Backend.OpenNetNS(ctx, req.Nsref, &nt)
	if err != nil {
		return nil, s.statusOf(ctx, err)
	}
	defer ns.Close()
	socks, err := sockdiag.List(ns, sockdiag.Options{TCP: req.Tcp, UDP: req.Udp, Listening: req.Listening})
	if err != nil {
		return nil, s.statusOf(ctx, err)
	}
	resp := &agentpb.SocketsResponse{Netns: ns.ID().Format(nsjoin.Net), Notices: nt.take()}
	if ctr != nil {
		resp.Label = ctr.Label()
		resp.Owner = ownerToPB(ownerOf(ctr))
	}
	for i := range socks {
		resp.Sockets = append(resp.Sockets, socketToPB(&socks[i]))
	}
	return resp, nil
}
