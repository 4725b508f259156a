// Package nsnet is net.Listen, net.ListenPacket and net.Dial for a given
// Linux network namespace.
//
// Each call creates its socket inside the namespace with nsjoin's Do (a
// thread locked, switched, and switched back), binds or starts the
// connection there, and returns the file descriptor to the host as an
// ordinary *net.TCPListener, *net.TCPConn, *net.UDPConn, *net.UnixListener
// or *net.UnixConn. A socket stays in the namespace it was created in, so
// the value can be used from any goroutine, and io.Copy between two of them
// can splice as between any two Go sockets.
//
// # Addresses are numeric
//
// Addresses inside the namespace must be numeric ("127.0.0.1:80",
// "[::1]:80", "[fe80::1%eth0]:80"). A host name is refused with
// ErrHostName: Go's resolver runs on other threads, which are in the host's
// namespace and would ask the host's DNS servers. Resolve names yourself,
// deliberately, if that is what you want. Ports are numeric too.
//
// Unix sockets: a path ("/run/x.sock") lives in the file system, which
// belongs to the mount namespace, not the network namespace; an abstract
// name ("@name") lives in the network namespace, so "@name" in one
// namespace is not "@name" in another.
//
// # What runs where
//
// Inside the namespace only leaf system calls run: socket, setsockopt,
// bind, listen, connect (non-blocking) and, for a zone name, the ioctl that
// turns it into an interface index. No goroutine is started there. Waiting
// for a connection to complete happens afterwards on the host, on Go's
// poller, so DialContext honours its context without holding a thread in
// the namespace. Every descriptor is close-on-exec and non-blocking; Close
// is Go's, so it is idempotent and unblocks pending reads. At most 8 calls
// are inside a namespace at once, so a burst of dials does not make the
// runtime start a thread for each.
//
// # Privileges
//
// Entering a network namespace needs CAP_SYS_ADMIN over it (root).
// Binding a port below the namespace's net.ipv4.ip_unprivileged_port_start
// needs CAP_NET_BIND_SERVICE.
package nsnet
