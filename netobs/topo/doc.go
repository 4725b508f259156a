// Package topo builds the graph of network namespaces as data: the
// namespaces (with every name netobs knows for them: `ip netns` names, a
// process in them), their interfaces (kind, state, MTU, MAC, addresses,
// master, physical device), and the edges between interfaces: veth pairs
// (across namespaces too), bridge and bond ports and their masters,
// VLAN/macvlan/ipvlan devices and their parents (across namespaces too),
// and the processes holding TUN/TAP devices open. It renders the graph as
// an indented text tree, JSON (nodes and edges), Graphviz DOT, and SVG
// (through Graphviz's dot program).
//
// # How peers are found
//
// A veth or a device with a parent reports the other end as an interface
// index (IFLA_LINK) and, when the other end lives in another namespace, as
// that namespace's nsid (IFLA_LINK_NETNSID), a number that only means
// something in the reporting namespace's own nsid table. Build translates
// it by asking the reporting namespace's own netlink socket (RTM_GETNSID
// with the candidate namespace's file descriptor) which nsid that
// namespace has there: only the kernel's answer places an edge, never a
// guess. rtnetlink leaves IFLA_LINK out when the other end's index equals
// the device's own, so a device with an nsid and no IFLA_LINK has its peer
// at its own index. An edge whose other end cannot be placed is not drawn;
// the interface records it as unresolved instead.
//
// # Network namespaces and threads
//
// Build makes one NETLINK_ROUTE socket inside each namespace through
// nsjoin's Do (a locked thread enters the namespace, creates the socket
// and returns), then dumps links and addresses and asks nsid questions
// from the host's threads. Every reply must come from the kernel (sender
// port ID 0); the netlink library refuses anything else. The sockets are
// closed before Build returns.
//
// # TUN/TAP owners
//
// The processes holding a TUN/TAP device are found in /proc/PID/fdinfo
// (the "iff:" line of an open /dev/net/tun). The name alone is ambiguous
// across namespaces, so Build copies the descriptor (pidfd_getfd) and
// asks the device's namespace (TUNGETDEVNETNS) before drawing the edge.
//
// # Privileges
//
// Entering other namespaces needs CAP_SYS_ADMIN; seeing other users'
// processes, their namespaces and their descriptors needs CAP_SYS_PTRACE.
// In practice: root.
//
// # Trust
//
// Names come from inside namespaces and from processes: an interface or a
// process may be named with escape sequences or markup. The text renderer
// escapes them for a terminal (internal/termsafe), the DOT renderer quotes
// them for Graphviz, and Graphviz escapes them for SVG.
package topo
