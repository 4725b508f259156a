package kube

import (
	"context"
	"io"
)

// Agents runs netobs operations on the agents of a set of targets and
// merges what they return. It is the seam between resolving what to
// observe (this package) and talking to agents: the kubectl plugin's
// implementation (internal/kubeplugin.AgentClient) uses the netobs agent
// client, so that this package stays free of the capture code.
//
// Every method runs until ctx is cancelled, the request's own limit is
// reached, or every agent's stream ends; it writes diagnostics and the
// final per-node counts to status, one line each, and returns an error
// naming the node of any agent that failed (the others keep going).
type Agents interface {
	// Capture captures on every Refs() of every target and writes to
	// req.Output one pcapng stream merged by timestamp (req.PcapNG), or
	// one text line per packet.
	Capture(ctx context.Context, targets []Target, req CaptureRequest, status io.Writer) error
	// Events reports changes to links, addresses, routes... in every
	// Refs() of every target.
	Events(ctx context.Context, targets []Target, req EventsRequest, status io.Writer) error
	// Sockets lists the sockets in every Refs() of every target.
	Sockets(ctx context.Context, targets []Target, req SocketsRequest, status io.Writer) error
	// PS lists the containers and pods every target's agent sees.
	PS(ctx context.Context, targets []Target, req PSRequest, status io.Writer) error
}

// CaptureRequest is `kubectl netobs capture`'s options, as `netobs
// capture` takes them.
type CaptureRequest struct {
	Interfaces []string // -i; empty: every interface
	Filter     string   // a libpcap filter expression; "" captures everything
	Count      int64    // -c; 0: until cancelled
	Snaplen    int      // -s; 0: the agent's default
	PcapNG     bool     // write pcapng to Output instead of text lines
	JSON       bool     // text lines as JSON objects
	Output     io.Writer
}

// EventsRequest is `kubectl netobs events`'s options.
type EventsRequest struct {
	Kinds   string // comma-separated link, addr, route, neigh, rule, nsid, or all
	Initial bool
	Count   int
	JSON    bool
	Output  io.Writer
}

// SocketsRequest is `kubectl netobs sockets`'s options.
type SocketsRequest struct {
	TCP, UDP, Listening bool
	JSON                bool
	Output              io.Writer
}

// PSRequest is `kubectl netobs ps`'s options.
type PSRequest struct {
	JSON   bool
	Output io.Writer
}
