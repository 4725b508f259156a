// Package forward relays TCP connections and UDP datagrams from a listener
// to a target that a dial function reaches: the engine behind
// `netobs forward`. It knows nothing of namespaces; the caller hands it a
// listener and a dial function, one of which (from package nsnet) creates
// its sockets inside a network namespace.
//
// TCP: every accepted connection gets its own connection to the target;
// bytes are spliced both ways through a pipe per direction that is created
// for the connection and closed with it (4 descriptors per open connection,
// none kept after; Go's io.Copy would splice through a process-wide pool
// that keeps a pair per peak connection until the garbage collector runs).
// An end-of-stream in one direction is passed on as a half-close (shutdown
// SHUT_WR); from then on the other direction must carry data at least every
// Config.HalfCloseTimeout. The pair is closed when both directions are done
// or either fails.
//
// UDP: every client address gets a session, a connected socket to the
// target, dialled on the session's own goroutine so that a slow dial holds
// up only that client; replies from the target go back to that client from
// the listening socket, read into buffers shared by all sessions, so an
// idle session costs a socket and a goroutine, not a 64 KiB buffer. A
// session ends after its idle timeout, and the table is bounded.
//
// The Stats a Serve function returns are taken after every connection and
// session has ended, so they include what those still open at the end
// relayed.
//
// Serve functions return when their context is cancelled, after closing
// the listener and every connection and waiting for every goroutine they
// started. They need no privileges beyond what the listener and the dial
// function needed.
package forward
