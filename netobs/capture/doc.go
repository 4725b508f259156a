// Package capture captures packets inside one or many network namespaces
// from a single process, with no tool installed in them.
//
// For every (namespace, interface) pair it opens an AF_PACKET socket inside
// the namespace (through nsjoin's Do, so the socket stays bound to that
// namespace), attaches the compiled filter before binding, so no packet
// that fails the filter is ever queued, and maps a TPACKET_V3 ring that is
// read from the host side. With one socket, one goroutine started by Run
// hands packets straight from the ring to the Handler and, when it has
// caught up, waits in Go's poller (the kernel signals once per ring block
// handed over; Close and context cancellation move the socket's deadline).
// With several, a reader goroutine drains every ring with a single poll(2)
// and copies packets out in batches, and Run merges them; that reader
// sleeps in poll(2) on the sockets and on an eventfd that Close and
// context cancellation signal. Rings are unmapped only after the reader
// has returned, so closing never pulls memory from under a reader.
//
// Filters are tcpdump expressions compiled by libpcap (cgo) for the link
// type of each socket, once per link type, the way live tcpdump compiles
// them. An expression that mentions vlan is compiled with a short-lived
// activated libpcap handle on the caller's own loopback (or "any") that
// receives nothing, because only then does libpcap test VLAN tags in the
// kernel's packet metadata, where the kernel has put them before
// packet-socket filters run; every other primitive compiles the same on a
// dead handle, which is used for the rest (the live one costs tens of
// milliseconds). Without CAP_NET_RAW in the caller's namespace a dead
// handle is used and "vlan" matches only tags still in the frame. A refused expression is a *FilterError (errors.Is
// ErrFilter). libpcap takes tens of seconds over an expression of hundreds
// of terms; OpenContext returns as soon as its context ends. Builds without
// cgo capture everything and refuse a filter expression with an error that
// says so.
//
// With several sockets, Run merges their packets in timestamp order; a part
// whose namespace or interface goes away ends with a note (Handler.Ended),
// the others go on. Its Packet, Interface and Stats are package pktout's,
// whose writers turn them into pcap and pcapng (one interface block per
// socket, with interface statistics including kernel drops) and one-line or
// JSON summaries.
//
// # Privileges and namespaces
//
// Opening needs CAP_NET_RAW in the target namespace and CAP_SYS_ADMIN to
// enter it. Only socket creation and the ioctls that name interfaces run
// inside the namespace; reading, filtering and writing run on ordinary
// goroutines in the host namespace.
package capture
