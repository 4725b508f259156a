// Package nlwire reads netlink datagrams that do not deserve trust: every
// netlink socket netobs creates inside a namespace can be written to by
// any process in that namespace with CAP_NET_ADMIN (a unicast to the
// socket's port id, or a multicast to a group it joined). Recv says
// whether a datagram came from the kernel, so callers drop the rest, and
// Messages and Attrs walk a datagram without ever reading past its end,
// whatever its lengths say.
//
// It makes no system call other than the ones named, and runs on any
// thread: a socket keeps the namespace it was created in.
package nlwire
