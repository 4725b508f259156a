// Package nstest gives Go tests real Linux network namespaces: fresh
// namespaces removed when the test ends, veth pairs and bridges between
// them with addresses, listeners and connections inside them as ordinary
// net values, and recorders of the packets and the link, address and route
// changes a namespace sees, for assertions. It is what a CNI plugin, VPN
// daemon or service mesh needs from its integration tests, without
// copying a helper or running `ip`.
//
//	func TestServe(t *testing.T) {
//		t.Parallel()
//		client, server := nstest.NewNetNS(t), nstest.NewNetNS(t)
//		nstest.Veth(t, client, server, "10.1.0.1/24", "10.1.0.2/24")
//		ln := nstest.Listen(t, server, "tcp", "10.1.0.2:8080")
//		go serve(ln)
//		conn := nstest.Dial(t, client, "tcp", "10.1.0.2:8080")
//		...
//	}
//
// Every helper takes a testing.TB, stops the test with Fatal when it
// cannot do its job, and registers with tb.Cleanup whatever it made, so a
// failing test leaves nothing behind: no namespace, no name under
// /run/netns, no interface in the host, no descriptor, no goroutine.
//
// # Threads and namespaces
//
// The package is pure Go: namespaces are made with package nsjoin, links,
// addresses and routes are configured with vishvananda/netlink handles
// whose sockets nsjoin's Do created inside the target namespace, and
// sockets come from packages nsnet, capture and events, which create them
// the same way. No `ip` binary is needed. Do enters a namespace on a fresh
// locked thread and returns it home before unlocking it, so no thread of
// the test process is ever left in a foreign namespace, and the helpers
// are safe to call from parallel tests (t.Parallel) and from any
// goroutine: what they return (a namespace handle, a net.Conn, a
// recorder) is used from the host, like any other value.
//
// A goroutine the code under test starts does not run inside a namespace
// just because the test made one: enter it with (*nsjoin.NS).Do, or hand
// the code the sockets this package returns.
//
// # Privileges and the CI rule
//
// Creating namespaces and configuring links needs root (CAP_SYS_ADMIN and
// CAP_NET_ADMIN); capturing needs CAP_NET_RAW. Without them a helper skips
// the test with a message that names the fix, except under CI=true, where
// it fails it: a CI run that skipped every namespace test would prove
// nothing. RequireRoot and RequireTools apply the same rule to a test's
// own needs.
//
// # Names
//
// A namespace made by NewNetNS has no name: it lives as long as handles on
// it are open, and the handle's path is that of a descriptor this package
// holds until the test ends. NewNamedNetNS makes one visible to `ip netns`
// under a name unique to the test run. Interface names are unique to the
// run too (UniqueName), so parallel tests, and parallel test binaries, do
// not collide on names in the host.
//
// # Why this name
//
// nstest sits at the module root, beside the packages it builds on (nsjoin,
// netobs/nsnet, netobs/capture, netobs/events), rather than under nsjoin as
// nsjoin/nsjointest would: a sub-package of nsjoin that depends on the
// observers above nsjoin would point the dependencies backwards. The name
// follows net/http/httptest and testing/fstest.
package nstest
