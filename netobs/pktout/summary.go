package pktout

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// SummaryWriter writes one line per packet, like tcpdump -n, or one JSON
// object per packet. It implements Handler.
type SummaryWriter struct {
	w    *bufio.Writer
	json bool
	enc  *json.Encoder
}

// NewSummaryWriter writes text lines, or JSON objects when asJSON is set.
// If w is a *bufio.Writer, lines go straight into it, so the caller may
// write lines of its own between them.
func NewSummaryWriter(w io.Writer, asJSON bool) *SummaryWriter {
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriterSize(w, 64<<10)
	}
	sw := &SummaryWriter{w: bw, json: asJSON}
	sw.enc = json.NewEncoder(sw.w)
	sw.enc.SetEscapeHTML(false)
	return sw
}

// PacketSummary is the JSON form of one packet.
type PacketSummary struct {
	Time      time.Time `json:"time"`
	Interface string    `json:"interface"`
	Namespace string    `json:"netns"`
	*Owner
	Direction string `json:"direction"`
	Length    int    `json:"length"`
	CapLen    int    `json:"caplen"`
	Proto     string `json:"proto,omitempty"`
	Src       string `json:"src,omitempty"`
	Dst       string `json:"dst,omitempty"`
	SrcPort   int    `json:"sport,omitempty"`
	DstPort   int    `json:"dport,omitempty"`
	Summary   string `json:"summary"`
}

// Packet writes the packet's line.
func (sw *SummaryWriter) Packet(p *Packet) error {
	s := Summarize(p)
	if sw.json {
		return sw.enc.Encode(s)
	}
	_, err := fmt.Fprintf(sw.w, "%s %s %-3s %s\n", s.Time.Format("15:04:05.000000"), s.Interface, s.Direction, s.Summary)
	return err
}

// Flush writes buffered lines out.
func (sw *SummaryWriter) Flush() error { return sw.w.Flush() }

// Ended does nothing; callers report ended parts themselves.
func (sw *SummaryWriter) Ended(*Interface, error) {}

// Summarize decodes a packet's headers into a PacketSummary.
func Summarize(p *Packet) PacketSummary {
	s := PacketSummary{Time: p.Timestamp(), Interface: p.Interface.Name, Namespace: p.Interface.Namespace, Owner: p.Interface.Owner,
		Length: p.Length, CapLen: p.CaptureLength(), Direction: "In"}
	if p.Outgoing {
		s.Direction = "Out"
	}
	data := make([]byte, 0, p.CaptureLength())
	data = append(append(data, p.Head...), p.Data...)
	var first gopacket.Decoder = layers.LayerTypeEthernet
	switch p.Interface.LinkType {
	case LinkLinuxSLL:
		first = layers.LayerTypeLinuxSLL
	case LinkRaw:
		first = rawIP{}
	}
	pkt := gopacket.NewPacket(data, first, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	var parts []string
	var ipProto string
	if l := pkt.Layer(layers.LayerTypeARP); l != nil {
		a := l.(*layers.ARP)
		s.Proto = "arp"
		// tcpdump prints the wire length after the link header.
		n := max(0, p.Length-(len(data)-len(a.Contents)-len(a.Payload)))
		if a.Operation == layers.ARPRequest {
			s.Summary = fmt.Sprintf("ARP, Request who-has %s tell %s, length %d", ipString(a.DstProtAddress), ipString(a.SourceProtAddress), n)
		} else {
			s.Summary = fmt.Sprintf("ARP, Reply %s is-at %s, length %d", ipString(a.SourceProtAddress), macString(a.SourceHwAddress), n)
		}
		return s
	}
	// Lengths are the packet's on the wire, as tcpdump prints them, also
	// when -s cut it: taken from the IP header, not from what was kept.
	var ipPayload []byte // the IP payload as captured
	ipPayloadWire := -1  // and its length on the wire
	// A header too short to decode leaves a layer without addresses:
	// summarise such a packet by its link layer.
	if ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok && ip.SrcIP != nil {
		s.Src, s.Dst, ipProto = ip.SrcIP.String(), ip.DstIP.String(), "IP"
		ipPayload, ipPayloadWire = ip.Payload, int(ip.Length)-int(ip.IHL)*4
	} else if ip, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok && ip.SrcIP != nil {
		s.Src, s.Dst, ipProto = ip.SrcIP.String(), ip.DstIP.String(), "IP6"
		ipPayload, ipPayloadWire = ip.Payload, int(ip.Length)
	}
	// wire is the length on the wire of layer l, which starts inside the
	// IP payload (after any IPv6 extension headers).
	wire := func(l gopacket.Layer, captured int) int {
		if ipPayloadWire < 0 {
			return captured
		}
		return max(0, ipPayloadWire-(len(ipPayload)-len(l.LayerContents())-len(l.LayerPayload())))
	}
	switch {
	case pkt.Layer(layers.LayerTypeTCP) != nil:
		t := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		s.Proto, s.SrcPort, s.DstPort = "tcp", int(t.SrcPort), int(t.DstPort)
		n := max(0, wire(t, len(t.Contents)+len(t.Payload))-len(t.Contents))
		parts = append(parts, fmt.Sprintf("%s %s.%d > %s.%d: Flags [%s], seq %d, length %d", ipProto, s.Src, s.SrcPort, s.Dst, s.DstPort, tcpFlags(t), t.Seq, n))
	case pkt.Layer(layers.LayerTypeUDP) != nil:
		u := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		s.Proto, s.SrcPort, s.DstPort = "udp", int(u.SrcPort), int(u.DstPort)
		parts = append(parts, fmt.Sprintf("%s %s.%d > %s.%d: UDP, length %d", ipProto, s.Src, s.SrcPort, s.Dst, s.DstPort, max(0, int(u.Length)-8)))
	case pkt.Layer(layers.LayerTypeICMPv4) != nil:
		ic := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		s.Proto = "icmp"
		what := words(ic.TypeCode.String())
		if t := ic.TypeCode.Type(); t == layers.ICMPv4TypeEchoRequest || t == layers.ICMPv4TypeEchoReply {
			what = fmt.Sprintf("%s, id %d, seq %d", what, ic.Id, ic.Seq)
		}
		parts = append(parts, fmt.Sprintf("%s %s > %s: ICMP %s, length %d", ipProto, s.Src, s.Dst, what, wire(ic, len(ic.Contents)+len(ic.Payload))))
	case pkt.Layer(layers.LayerTypeICMPv6) != nil:
		ic := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		s.Proto = "icmp6"
		what := words(ic.TypeCode.String())
		if e, ok := pkt.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo); ok {
			what = fmt.Sprintf("%s, id %d, seq %d", what, e.Identifier, e.SeqNumber)
		}
		parts = append(parts, fmt.Sprintf("%s %s > %s: ICMP6, %s, length %d", ipProto, s.Src, s.Dst, what, wire(ic, len(ic.Contents)+len(ic.Payload))))
	case ipProto != "":
		s.Proto = strings.ToLower(ipProto)
		parts = append(parts, fmt.Sprintf("%s %s > %s: length %d", ipProto, s.Src, s.Dst, p.Length))
	default:
		parts = append(parts, fmt.Sprintf("%s, length %d", linkSummary(pkt), p.Length))
	}
	s.Summary = strings.Join(parts, " ")
	return s
}

// rawIP decodes a LINKTYPE_RAW packet by its IP version.
type rawIP struct{}

func (rawIP) Decode(data []byte, p gopacket.PacketBuilder) error {
	if len(data) > 0 && data[0]>>4 == 6 {
		return layers.LayerTypeIPv6.Decode(data, p)
	}
	return layers.LayerTypeIPv4.Decode(data, p)
}

func linkSummary(pkt gopacket.Packet) string {
	if l := pkt.Layer(layers.LayerTypeEthernet); l != nil {
		e := l.(*layers.Ethernet)
		return fmt.Sprintf("%s > %s, ethertype %s (0x%04x)", e.SrcMAC, e.DstMAC, e.EthernetType, uint16(e.EthernetType))
	}
	if l := pkt.Layer(layers.LayerTypeLinuxSLL); l != nil {
		e := l.(*layers.LinuxSLL)
		return fmt.Sprintf("ethertype %s (0x%04x)", e.EthernetType, uint16(e.EthernetType))
	}
	return "unknown"
}

func tcpFlags(t *layers.TCP) string {
	var b strings.Builder
	for _, f := range []struct {
		on bool
		c  byte
	}{{t.FIN, 'F'}, {t.SYN, 'S'}, {t.RST, 'R'}, {t.PSH, 'P'}, {t.ACK, '.'}, {t.URG, 'U'}, {t.ECE, 'E'}, {t.CWR, 'W'}} {
		if f.on {
			b.WriteByte(f.c)
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

func ipString(b []byte) string {
	if len(b) == 4 {
		return strconv.Itoa(int(b[0])) + "." + strconv.Itoa(int(b[1])) + "." + strconv.Itoa(int(b[2])) + "." + strconv.Itoa(int(b[3]))
	}
	return fmt.Sprintf("%x", b)
}

func macString(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

// words turns gopacket's "EchoRequest" into tcpdump's "echo request".
func words(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte(' ')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
