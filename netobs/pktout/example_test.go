package pktout_test

import (
	"fmt"
	"log"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/netobs/netobs/netobs/pktout"
)

// Summarize decodes a packet as tcpdump -n prints it; the one-line and
// JSON outputs of netobs capture and attach are made of it. It needs no privilege.
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
	ifc := &pktout.Interface{Name: "eth0@blue", LinkType: pktout.LinkEthernet}
	p := &pktout.Packet{Interface: ifc, Length: len(buf.Bytes()), Data: buf.Bytes()}
	s := pktout.Summarize(p)
	fmt.Println(s.Interface, s.Proto, s.DstPort)
	fmt.Println(s.Summary)
	// Output:
	// eth0@blue udp 53
	// IP 10.0.0.1.40000 > 10.0.0.2.53: UDP, length 5
}
