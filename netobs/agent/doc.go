// Package agent is the netobs node agent and its clients: the server that
// `netobs agent` runs, the client that `netobs ... --agent ADDR` and the
// kubectl plugin use, and CaptureMerged, one pcapng from many agents.
//
// The API is gRPC, defined in agentpb/agent.proto. A request carries what
// the command line carries (NSREFs, selector, filter, flags); the agent
// resolves it on its own host with the CLI's own functions (Backend), so a
// request means there what the same command means locally. Packets travel
// in batches of packed records (see the Packets message), parsed here with
// bounds checks, or, when the request asks for PACKET_FORMAT_PCAPNG (a
// single client writing pcapng: a BlocksHandler), as the pcapng enhanced
// packet blocks the client's file holds, checked and written as they
// are; everything else is protobuf. Both ends marshal the
// batches with a codec (codec.go) that saves copies but puts protobuf's
// own bytes on the wire: the agent hands its batch buffer to gRPC instead
// of marshalling it, the client decodes into one reused buffer.
//
// # Raw packet stream
//
// A capture's packets may also skip gRPC's transport (HTTP/2 frames of
// 16 KiB handed between gRPC's goroutines, which cost more CPU than
// the capture): the client asks for it in the request (raw_stream), the
// agent answers with a one-time 32-byte ticket in Start, and the client
// opens a second connection to the same address (Source.Dial again, so a
// port-forward works) that starts with "NOBRAW1\n" and the ticket. The
// agent's Server.Listener tells such connections from gRPC's (which start
// with the HTTP/2 preface) by their first bytes and hands them to the
// capture that issued the ticket; the ticket is good once and only while
// that call lasts, so the call's token check covers the stream. The
// stream carries the call's Packets (records or pcapng blocks, as the
// request's packet_format says) and its Progress, Notice and Ended
// messages in order, in length-prefixed frames, then an end frame;
// Final still comes on the call, after it. A client that cannot connect
// the stream reads the call as before, where the agent sends after
// waiting a few seconds for it; an agent that offers no ticket (older, or
// not served through Listener) is read the old way. Ending either side
// closes both. Both ends read and write the stream's socket with raw
// system calls on its non-blocking descriptor (quietConn), which keeps
// the Go runtime's monitor thread asleep during a flood.
//
// # Server
//
// NewServer + Server.GRPCServer: serve it on a unix socket or a loopback
// TCP listener wrapped by Server.Listener (which also takes the raw
// packet streams). The server bounds the streams served at once
// (Config.MaxStreams: RESOURCE_EXHAUSTED beyond) and, per capture, the
// bytes queued for a slow client (Config.StreamBuffer: beyond it batches
// are dropped and counted, reported as agent_dropped in the final counts);
// the capture never waits for the client. When a call ends (client gone,
// Stop, server stopped) the capture or watch is closed: rings, sockets,
// namespace handles and goroutines are freed before the handler returns.
// A Config.Token, if set, must come with every call as
// "authorization: Bearer TOKEN" (compared in constant time).
//
// # Clients
//
//	c, err := agent.Dial("/run/netobs/agent.sock", "")     // or New(Source)
//	res, err := c.Capture(ctx, &agentpb.CaptureRequest{Args: []string{"docker:web"}, Dash: -1}, handler)
//
// Client.Capture, Events, Sockets, Topology, Containers and Namespaces return
// errors of type *Error; errors.Is tells ErrUsage (the agent refused the
// request as a usage mistake: exit 2), ErrUnreachable, ErrBusy, ErrDenied
// and ErrProtocol apart. Cancelling a call's context asks the agent to stop
// (Stop) and waits up to StopGrace for its final counts.
//
// CaptureMerged(ctx, sources, req, w, opts) captures from many agents
// (each a Source: a name and a dial function, e.g. through a Kubernetes
// port-forward; optionally its own request) into one pcapng merged by
// timestamp with a bounded reordering window (MergeOptions), one
// interface per (source, namespace, interface) named
// DEVICE@LABEL@SOURCE, and returns per-source counts. A source that fails
// is reported and left out; the file stays valid.
//
// # Privileges
//
// The server needs what the local commands need (root: CAP_SYS_ADMIN to
// enter namespaces, CAP_NET_RAW, CAP_NET_ADMIN). Clients need nothing but
// access to the agent's socket.
package agent
