//go:build !linux

package nsnet

import (
	"context"
	"errors"
	"net"
	"runtime"

	"github.com/netobs/netobs/nsjoin"
)

var errGOOS = errors.New("network namespaces are not supported on " + runtime.GOOS)

func ref(ns *nsjoin.NS) string {
	if ns == nil {
		return "<nil>"
	}
	return ns.Ref()
}

// Listen is not supported outside Linux.
func Listen(ns *nsjoin.NS, network, address string) (net.Listener, error) {
	return nil, &Error{Op: "listen", Net: network, Addr: address, NS: ref(ns), Err: errGOOS}
}

// ListenPacket is not supported outside Linux.
func ListenPacket(ns *nsjoin.NS, network, address string) (net.PacketConn, error) {
	return nil, &Error{Op: "listen", Net: network, Addr: address, NS: ref(ns), Err: errGOOS}
}

// Dial is not supported outside Linux.
func Dial(ns *nsjoin.NS, network, address string) (net.Conn, error) {
	return DialContext(context.Background(), ns, network, address)
}

// DialContext is not supported outside Linux.
func DialContext(ctx context.Context, ns *nsjoin.NS, network, address string) (net.Conn, error) {
	return nil, &Error{Op: "dial", Net: network, Addr: address, NS: ref(ns), Err: errGOOS}
}
