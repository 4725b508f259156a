package pktout_test

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/pktout"
)

// frames returns Ethernet frames of the kinds the summary names: ICMP and
// ICMPv6 echoes, UDP, TCP with data, ARP.
func frames(t testing.TB) [][]byte {
	mac1, mac2 := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	ip1, ip2 := net.IP{10, 0, 0, 1}, net.IP{10, 0, 0, 2}
	ip61, ip62 := net.ParseIP("fd00::1"), net.ParseIP("fd00::2")
	payload := gopacket.Payload(bytes.Repeat([]byte("netobs"), 100))
	eth := func(t layers.EthernetType) *layers.Ethernet {
		return &layers.Ethernet{SrcMAC: mac1, DstMAC: mac2, EthernetType: t}
	}
	v4 := func(p layers.IPProtocol) *layers.IPv4 {
		return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: p, SrcIP: ip1, DstIP: ip2}
	}
	v6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: ip61, DstIP: ip62}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1234, ACK: true, PSH: true, Window: 512, DataOffset: 5}
	tcp.SetNetworkLayerForChecksum(v4(layers.IPProtocolTCP))
	udp := &layers.UDP{SrcPort: 5000, DstPort: 5001}
	icmp6 := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
	icmp6.SetNetworkLayerForChecksum(v6)
	stacks := [][]gopacket.SerializableLayer{
		{eth(layers.EthernetTypeIPv4), v4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 4660, Seq: 7}, payload[:56]},
		{eth(layers.EthernetTypeIPv4), v4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0), Id: 4660, Seq: 7}, payload[:300]},
		{eth(layers.EthernetTypeIPv6), v6, icmp6, &layers.ICMPv6Echo{Identifier: 11, SeqNumber: 3}, payload[:56]},
		{eth(layers.EthernetTypeIPv4), v4(layers.IPProtocolUDP), udp, payload[:100]},
		{eth(layers.EthernetTypeIPv4), v4(layers.IPProtocolTCP), tcp, payload[:500]},
		{eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: mac1, SourceProtAddress: ip1, DstHwAddress: make([]byte, 6), DstProtAddress: ip2}},
	}
	udp.SetNetworkLayerForChecksum(stacks[3][1].(*layers.IPv4))
	var out [][]byte
	for _, st := range stacks {
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, st...); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

var lengthRE = regexp.MustCompile(`length (\d+)`)

// TestSummaryMatchesTcpdump: for packets cut by a snapshot length, the
// summary line says what tcpdump -n says of them (the length on the wire,
// ICMP id and seq); for TCP, whose line tcpdump fills with options, the
// length at least.
func TestSummaryMatchesTcpdump(t *testing.T) {
	nstest.RequireTools(t, "tcpdump")
	for _, snap := range []int{262144, 60} {
		ifc := &pktout.Interface{Name: "eth0@x", LinkType: pktout.LinkEthernet, Snaplen: snap}
		var file bytes.Buffer
		w, err := pktout.NewPcapWriter(&file, ifc)
		if err != nil {
			t.Fatal(err)
		}
		var ours []string
		for i, f := range frames(t) {
			p := &pktout.Packet{Interface: ifc, Time: int64(i+1) * 1e9, Length: len(f), Data: f[:min(len(f), snap)]}
			ours = append(ours, pktout.Summarize(p).Summary)
			w.Packet(p)
		}
		w.Flush()
		path := t.TempDir() + "/s.pcap"
		os.WriteFile(path, file.Bytes(), 0o644)
		out, err := exec.Command("tcpdump", "-n", "-t", "-r", path).Output()
		if err != nil {
			t.Fatalf("tcpdump -r: %v", err)
		}
		theirs := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(theirs) != len(ours) {
			t.Fatalf("-s %d: tcpdump printed %d lines, %q", snap, len(theirs), theirs)
		}
		for i := range ours {
			if strings.Contains(ours[i], "Flags [") {
				if a, b := lengthRE.FindAllString(ours[i], -1), lengthRE.FindAllString(theirs[i], -1); len(a) == 0 || a[len(a)-1] != b[len(b)-1] {
					t.Errorf("-s %d: netobs %q, tcpdump %q: lengths differ", snap, ours[i], theirs[i])
				}
				continue
			}
			if cut, ok := strings.CutSuffix(theirs[i], " [|icmp6]"); ok {
				// tcpdump stops where the cut is; netobs says what it can.
				if !strings.HasPrefix(ours[i], cut) {
					t.Errorf("-s %d:\n netobs  %q\n tcpdump %q", snap, ours[i], theirs[i])
				}
				continue
			}
			if ours[i] != theirs[i] {
				t.Errorf("-s %d:\n netobs  %q\n tcpdump %q", snap, ours[i], theirs[i])
			}
		}
	}
}

// FuzzSummarize: any bytes, as any link type, cut anywhere, summarise
// without a panic into one line.
func FuzzSummarize(f *testing.F) {
	for _, fr := range frames(f) {
		f.Add(fr, uint16(1), uint16(len(fr)))
		f.Add(fr, uint16(1), uint16(40))
		f.Add(fr[14:], uint16(101), uint16(len(fr)))
		f.Add(append(make([]byte, 16), fr[14:]...), uint16(113), uint16(len(fr)+2))
	}
	f.Add([]byte{0x45, 0, 0}, uint16(101), uint16(3)) // an IPv4 header cut short
	f.Add([]byte{0x60, 0, 0}, uint16(101), uint16(3))
	f.Fuzz(func(t *testing.T, data []byte, link uint16, wire uint16) {
		ifc := &pktout.Interface{Name: "x@y", LinkType: pktout.LinkType(link)}
		p := &pktout.Packet{Interface: ifc, Length: max(int(wire), len(data)), Data: data}
		s := pktout.Summarize(p)
		if strings.ContainsAny(s.Summary, "\n\r") || strings.Contains(s.Summary, "<nil>") || s.Length != p.Length || s.CapLen != len(data) {
			t.Fatalf("summary %+v", s)
		}
	})
}
