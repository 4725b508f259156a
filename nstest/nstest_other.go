//go:build !linux

package nstest

import (
	"net"
	"runtime"
	"testing"

	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/nsjoin"
)

// Network namespaces are Linux only: on other systems every helper that
// needs one stops the test as Unavailable does (a failure under CI=true),
// so that tests written for Linux still compile here.
func noNamespaces(tb testing.TB) {
	tb.Helper()
	Unavailable(tb, "needs Linux network namespaces, not "+runtime.GOOS)
}

func NewNetNS(tb testing.TB) *nsjoin.NS      { tb.Helper(); noNamespaces(tb); return nil }
func NewNamedNetNS(tb testing.TB) *nsjoin.NS { tb.Helper(); noNamespaces(tb); return nil }
func HostNS(tb testing.TB) *nsjoin.NS        { tb.Helper(); noNamespaces(tb); return nil }
func Veth(tb testing.TB, a, b *nsjoin.NS, addrA, addrB string) (Link, Link) {
	tb.Helper()
	noNamespaces(tb)
	return Link{}, Link{}
}
func VethEnds(tb testing.TB, a, b End) (Link, Link) {
	tb.Helper()
	noNamespaces(tb)
	return Link{}, Link{}
}
func AddAddr(tb testing.TB, l Link, addr string) Link {
	tb.Helper()
	noNamespaces(tb)
	return l
}
func AddRoute(tb testing.TB, ns *nsjoin.NS, dst, gw string) { tb.Helper(); noNamespaces(tb) }
func Bridge(tb testing.TB, hub *nsjoin.NS, addr string, members ...End) (Link, []Link) {
	tb.Helper()
	noNamespaces(tb)
	return Link{}, nil
}
func Listen(tb testing.TB, ns *nsjoin.NS, network, address string) net.Listener {
	tb.Helper()
	noNamespaces(tb)
	return nil
}
func ListenPacket(tb testing.TB, ns *nsjoin.NS, network, address string) net.PacketConn {
	tb.Helper()
	noNamespaces(tb)
	return nil
}
func Dial(tb testing.TB, ns *nsjoin.NS, network, address string) net.Conn {
	tb.Helper()
	noNamespaces(tb)
	return nil
}
func Capture(tb testing.TB, ns *nsjoin.NS, iface, filter string) *Recorder[Packet] {
	tb.Helper()
	noNamespaces(tb)
	return nil
}
func Events(tb testing.TB, ns *nsjoin.NS, kinds ...events.Kind) *Recorder[events.Event] {
	tb.Helper()
	noNamespaces(tb)
	return nil
}
