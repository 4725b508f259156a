package capture_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/netobs/netobs/netobs/capture"
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
	w, err := capture.NewPcapngWriter(f, c.Interfaces(), "example")
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

// Summarize decodes a packet as tcpdump -n prints it; the one-line and
// JSON outputs of netobs capture are made of it. It needs no privilege.
func ExampleSummarize() {
	eth := &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: []byte{10, 0, 0, 1}, DstIP: []byte{10, 0, 0, 2}}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 53}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload("query")); err != nil {
		log.Fatal(err)
	}
	ifc := &capture.Interface{Name: "eth0@blue", LinkType: capture.LinkEthernet}
	p := &capture.Packet{Interface: ifc, Length: len(buf.Bytes()), Data: buf.Bytes()}
	s := capture.Summarize(p)
	fmt.Println(s.Interface, s.Proto, s.DstPort)
	fmt.Println(s.Summary)
	// Output:
	// eth0@blue udp 53
	// IP 10.0.0.1.40000 > 10.0.0.2.53: UDP, length 5
}
