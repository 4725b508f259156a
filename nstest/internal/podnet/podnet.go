// Package podnet is the small CNI-style program that docs/LIBRARY.md tests:
// Add joins a container's network namespace to the namespace it is called
// in with a veth pair, and ServeHealth answers health checks on the
// container's address. It is written as a plugin author would write it with
// netobs's libraries; its test (podnet_linux_test.go) is the one the
// document shows, so the document stays true.
package podnet

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/netobs/netobs/netobs/nsnet"
	"github.com/netobs/netobs/nsjoin"
)

// Add creates a veth pair: hostIf in the calling thread's network
// namespace (where a CNI plugin runs) and eth0 in the namespace at
// netnsPath (CNI_NETNS), gives eth0 the address addr, and brings both ends
// up. It makes only netlink calls, so it may run inside nsjoin's Do.
func Add(netnsPath, hostIf string, addr netip.Prefix) error {
	ns, err := nsjoin.OpenFile(netnsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostIf},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(ns.Fd()),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s: %w", hostIf, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return fmt.Errorf("set %s up: %w", hostIf, err)
	}
	return ns.Do(func() error {
		eth0, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		ipnet := &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), addr.Addr().BitLen())}
		if err := netlink.AddrAdd(eth0, &netlink.Addr{IPNet: ipnet}); err != nil {
			return fmt.Errorf("add %s to eth0: %w", addr, err)
		}
		return netlink.LinkSetUp(eth0)
	})
}

// ServeHealth listens on port 8080 of addr inside the namespace at
// netnsPath and answers every request with "ok from ADDR". Close the
// listener it returns to stop.
func ServeHealth(netnsPath string, addr netip.Addr) (net.Listener, error) {
	ns, err := nsjoin.OpenFile(netnsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close() // the socket stays in the namespace
	ln, err := nsnet.Listen(ns, "tcp", netip.AddrPortFrom(addr, 8080).String())
	if err != nil {
		return nil, err
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok from %s\n", addr)
	}))
	return ln, nil
}
