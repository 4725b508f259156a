// Package forward relays TCP connections and UDP datagrams from a listener
// to a target that a dial function reaches: the engine behind
// `netobs forward`. It knows nothing of namespaces; the caller hands it a
// listener and a dial function, one of which (from package nsnet) creates
// its sockets inside a network namespace.
//
// TCP: every accepted connection gets its own connection to the target;
// bytes are copied both ways with io.Copy, so two kernel sockets splice; an
// end-of-stream in one direction is passed on as a half-close (shutdown
// SHUT_WR), and the pair is closed when both directions are done or either
// fails.
//
// UDP: every client address gets a session, a connected socket to the
// target; replies from the target go back to that client from the listening
// socket. A session ends after its idle timeout, and the table is bounded.
//
// Serve functions return when their context is cancelled, after closing
// the listener and every connection and waiting for every goroutine they
// started. They need no privileges beyond what the listener and the dial
// function needed.
package forward
