package tapdev_test

import (
	"fmt"
	"log"
	"net/netip"

	"github.com/netobs/netobs/nsjoin"
	"github.com/netobs/netobs/tapdev"
)

// A TAP device inside a namespace, read from the host: frames the
// namespace sends to 10.9.0.0/24 arrive here. Needs root.
func ExampleCreate() {
	ns, err := nsjoin.Open("blue")
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	dev, err := tapdev.Create(ns, tapdev.Config{
		Kind:  tapdev.TAP,
		Name:  "obs0",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close() // removes the device; unblocks the Read below
	frame := make([]byte, 65536)
	n, err := dev.Read(frame)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s in %s: %d-byte frame\n", dev.Name(), dev.Namespace(), n)
}
