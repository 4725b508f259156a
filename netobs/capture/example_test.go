package capture_test

import (
	"context"
	"log"
	"os"
	"os/signal"

	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/pktout"
	"github.com/netobs/netobs/nsjoin"
)

// tcpdump -i eth0 -w dns.pcapng 'udp port 53', inside two namespaces at
// once, into one pcapng file with an interface per namespace. Needs root
// (CAP_SYS_ADMIN to enter, CAP_NET_RAW to capture) and a cgo build for the
// filter.
func ExampleOpen() {
	var targets []capture.Target
	for _, name := range []string{"blue", "red"} {
		ns, err := nsjoin.Open(name)
		if err != nil {
			log.Fatal(err)
		}
		defer ns.Close()
		targets = append(targets, capture.Target{NS: ns})
	}
	c, err := capture.Open(targets, capture.Config{Interfaces: []string{"eth0"}, Filter: "udp port 53"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	f, err := os.Create("dns.pcapng")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	w, err := pktout.NewPcapngWriter(f, c.Interfaces(), "example")
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := c.Run(ctx, w); err != nil {
		log.Fatal(err)
	}
	w.WriteStats(c.Stats()) // received, dropped by the kernel
	w.Flush()
}
