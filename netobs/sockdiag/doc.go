// Package sockdiag lists the TCP and UDP sockets of a network namespace, as
// `ss -tuna` run inside it would, and finds the processes that hold them.
//
// The listing comes from the kernel's sock_diag netlink interface. The
// netlink socket is created inside the namespace with nsjoin's Do, so it
// reports that namespace's sockets; the dump itself is read on the host
// thread that calls List. Owning processes are found by scanning
// /proc/PID/fd for the sockets' inodes, in the caller's PID namespace.
// Processes of the namespace can send to that netlink socket too: it is
// connected to the kernel, and datagrams not sent by the kernel are
// dropped unread.
//
// # Privileges
//
// Entering the namespace needs CAP_SYS_ADMIN over it. Finding the owners
// of other users' sockets needs the right to read their /proc/PID/fd
// (CAP_SYS_PTRACE, or root); sockets whose owner cannot be read are listed
// without processes.
package sockdiag
