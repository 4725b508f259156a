package attach

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/nsjoin"
	"github.com/netobs/netobs/tapdev"
)

// Format is how frames are written out. The zero value is invalid.
type Format int

const (
	_ Format = iota
	// Text is one tcpdump-like line per frame.
	Text
	// JSON is one JSON object per frame and line.
	JSON
	// PCAP is a libpcap file (microsecond timestamps).
	PCAP
	// PCAPNG is a pcapng file with one interface, the device.
	PCAPNG
)

var formatNames = map[Format]string{Text: "text", JSON: "json", PCAP: "pcap", PCAPNG: "pcapng"}

func (f Format) String() string {
	if s, ok := formatNames[f]; ok {
		return s
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// Binary reports whether the format must not go to a terminal.
func (f Format) Binary() bool { return f == PCAP || f == PCAPNG }

// ParseFormat parses text, json, pcap or pcapng.
func ParseFormat(s string) (Format, error) {
	for f, name := range formatNames {
		if s == name {
			return f, nil
		}
	}
	return 0, fmt.Errorf("unknown format %q (want text, json, pcap or pcapng)", s)
}

// Options configure Run.
type Options struct {
	// Ref names the target network namespace (NSREF).
	Ref string
	// NS, if not nil, is the target network namespace, already open (a
	// container's, say); Ref then only names it in messages. Run does not
	// close it.
	NS *nsjoin.NS
	// Device is the device to create there.
	Device tapdev.Config
	// Output receives the frames in Format; nil discards them.
	Output io.Writer
	Format Format
	// Count stops Run after that many frames were read; 0 means no limit.
	Count uint64
	// Inject, if not nil, holds the frames to write into the namespace
	// through the device once it is configured (see OpenInject).
	Inject *InjectFile
	// InjectOnly stops Run when the injection is done, without reading.
	InjectOnly bool
	// Log receives progress lines (device created, frames injected); nil
	// discards them.
	Log io.Writer
	// WatchInterval is how often Run checks that the namespace still
	// exists; zero means 100ms.
	WatchInterval time.Duration
	// Events, if not zero, interleaves the namespace's netlink events of
	// these kinds with the frames: as lines in text output, as
	// {"event": ...} objects in JSON, and on Log beside pcap output,
	// which has no place for them.
	Events events.Kinds
}

// StopReason says why Run stopped.
type StopReason int

const (
	_ StopReason = iota
	// Cancelled: the context was cancelled (SIGINT, SIGTERM, SIGHUP, SIGQUIT).
	Cancelled
	// CountReached: Count frames were read.
	CountReached
	// NamespaceGone: the target namespace went away.
	NamespaceGone
	// InjectDone: InjectOnly and the injection finished.
	InjectDone
	// DeviceGone: the device was deleted from inside the namespace.
	DeviceGone
	// OutputClosed: the reader of the output went away (EPIPE), as when
	// piping into head.
	OutputClosed
	// MirrorGone: the interface mirrored into the device was deleted in
	// the namespace.
	MirrorGone
)

func (r StopReason) String() string {
	switch r {
	case Cancelled:
		return "interrupted"
	case CountReached:
		return "count reached"
	case NamespaceGone:
		return "namespace gone"
	case InjectDone:
		return "injection done"
	case DeviceGone:
		return "device gone"
	case OutputClosed:
		return "output closed"
	case MirrorGone:
		return "mirrored interface gone"
	}
	return "StopReason(" + strconv.Itoa(int(r)) + ")"
}

// Result is what Run counted.
type Result struct {
	Device    string // the device's name in the target
	Namespace string // net:[...]
	Reason    StopReason
	// Detail says more about Reason ("process 1234 exited").
	Detail string
	// Read is the number of frames read from the device; Written the
	// number injected; InjectFailed the injected frames the kernel
	// refused.
	Read, Written, InjectFailed uint64
	// Dropped is the number of frames the kernel dropped because they
	// were not read fast enough: the device's TX dropped counter.
	Dropped uint64
	// InjectTime is how long the injection took.
	InjectTime time.Duration
}

// InjectFile is a pcap or pcapng file opened for injection.
type InjectFile struct {
	Path     string
	LinkType layers.LinkType
	// Frames is the number of records in the file, or -1 if the file
	// could not be read ahead (a pipe).
	Frames int
	c      io.Closer
	rs     io.ReadSeeker // nil for a file that cannot seek
	r      io.Reader
	kind   tapdev.Kind
	next   func() ([]byte, error)
	n      int // records read
}

// maxInjectFrame is the largest record injected: no TUN/TAP device
// passes more, and a larger capture length means a damaged file.
const maxInjectFrame = snapLen

// OpenInject opens a pcap or pcapng file and checks that its link type
// suits a device of kind k: Ethernet for TAP, raw IP for TUN. A regular
// file is read through once, so that a damaged one (a truncated record,
// an impossible capture length, a bad block) is refused before anything
// is created.
func OpenInject(path string, k tapdev.Kind) (*InjectFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("inject: %w", err)
	}
	var rs io.ReadSeeker
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		rs = f
	}
	in, err := newInject(path, f, rs, k)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("inject %s: %w", path, err)
	}
	in.c = f
	return in, nil
}

// newInject reads from r, or from rs (the same file) if it can seek.
func newInject(path string, r io.Reader, rs io.ReadSeeker, k tapdev.Kind) (*InjectFile, error) {
	in := &InjectFile{Path: path, r: r, rs: rs, kind: k, Frames: -1}
	if err := in.open(); err != nil {
		return nil, err
	}
	if rs == nil {
		return in, nil
	}
	for {
		_, err := in.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	in.Frames = in.n
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if err := in.open(); err != nil {
		return nil, err
	}
	return in, nil
}

// open reads the file header and sets up next.
func (in *InjectFile) open() error {
	in.n = 0
	br := bufio.NewReaderSize(in.r, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return errors.New("not a pcap or pcapng file (too short)")
	}
	if string(magic) == "\x0a\x0d\x0d\x0a" {
		r, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return fmt.Errorf("not a pcapng file: %w", err)
		}
		in.LinkType = r.LinkType()
		in.next = func() ([]byte, error) { d, _, err := r.ZeroCopyReadPacketData(); return d, err }
	} else {
		r, err := pcapgo.NewReader(br)
		if err != nil {
			return fmt.Errorf("not a pcap or pcapng file: %w", err)
		}
		in.LinkType = r.LinkType()
		in.next = func() ([]byte, error) { d, _, err := r.ZeroCopyReadPacketData(); return d, err }
	}
	switch {
	case in.kind == tapdev.TAP && in.LinkType != layers.LinkTypeEthernet:
		return fmt.Errorf("link type %v, a tap device takes Ethernet (1)", in.LinkType)
	case in.kind == tapdev.TUN && !isRawIP(in.LinkType):
		return fmt.Errorf("link type %v, a tun device takes raw IP (101, 228 or 229)", in.LinkType)
	}
	return nil
}

func isRawIP(lt layers.LinkType) bool {
	return lt == layers.LinkTypeRaw || lt == layers.LinkTypeIPv4 || lt == layers.LinkTypeIPv6 || lt == 12 // 12: raw IP on OpenBSD-style writers
}

// Next returns the next frame, valid until the following call, or io.EOF
// at the end of the file. Any other error means the file is damaged at
// that record.
func (in *InjectFile) Next() ([]byte, error) {
	d, err := in.next()
	switch {
	case err == io.EOF:
		return nil, err
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("record %d: truncated", in.n+1)
	case err != nil:
		return nil, fmt.Errorf("record %d: %w", in.n+1, err)
	case len(d) > maxInjectFrame:
		return nil, fmt.Errorf("record %d: %d bytes, more than the %d a device takes", in.n+1, len(d), maxInjectFrame)
	}
	in.n++
	return d, nil
}

// Close closes the file.
func (in *InjectFile) Close() error {
	if in.c == nil {
		return nil
	}
	return in.c.Close()
}

// sink writes frames in one format. Calls are serialised by the caller.
type sink interface {
	frame(ts time.Time, data []byte) error
	event(ev events.Event) error
	// flush pushes buffered output to the writer; stats are the final
	// counts where the format has room for them.
	flush(final bool, st *Result) error
}

func newSink(w io.Writer, f Format, dev string, k tapdev.Kind, ns string) (sink, error) {
	if w == nil {
		return discard{}, nil
	}
	lt := layers.LinkTypeEthernet
	if k == tapdev.TUN {
		lt = layers.LinkTypeRaw
	}
	switch f {
	case Text, JSON:
		return &textSink{w: bufio.NewWriterSize(w, 64<<10), json: f == JSON, dev: dev, kind: k}, nil
	case PCAP:
		bw := bufio.NewWriterSize(w, 1<<20)
		pw := pcapgo.NewWriter(bw)
		if err := pw.WriteFileHeader(snapLen, lt); err != nil {
			return nil, err
		}
		return &pcapSink{bw: bw, w: pw}, nil
	case PCAPNG:
		nw, err := pcapgo.NewNgWriterInterface(w, pcapgo.NgInterface{
			Name:                dev,
			Description:         "netobs attach, " + k.String() + " device in " + ns,
			OS:                  "Linux",
			LinkType:            lt,
			SnapLength:          snapLen,
			TimestampResolution: 9,
		}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{OS: "Linux", Application: "netobs"}})
		if err != nil {
			return nil, err
		}
		return &ngSink{w: nw, start: time.Now()}, nil
	}
	return nil, fmt.Errorf("invalid format %v", f)
}

// snapLen covers the largest frame a TUN/TAP device passes (64 KiB IP
// packet plus link header), as tcpdump's default does.
const snapLen = 262144

type discard struct{}

func (discard) frame(time.Time, []byte) error { return nil }
func (discard) event(events.Event) error      { return nil }
func (discard) flush(bool, *Result) error     { return nil }

type pcapSink struct {
	bw *bufio.Writer
	w  *pcapgo.Writer
}

func (s *pcapSink) frame(ts time.Time, data []byte) error {
	return s.w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(data), Length: len(data)}, data)
}

func (s *pcapSink) flush(bool, *Result) error { return s.bw.Flush() }

// A pcap file has no place for events; Run writes them to Log.
func (s *pcapSink) event(events.Event) error { return nil }

type ngSink struct {
	w     *pcapgo.NgWriter
	start time.Time
}

func (s *ngSink) frame(ts time.Time, data []byte) error {
	return s.w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(data), Length: len(data), InterfaceIndex: 0}, data)
}

// Run writes events beside pcapng output to Log, as for pcap.
func (s *ngSink) event(events.Event) error { return nil }

func (s *ngSink) flush(final bool, st *Result) error {
	if final && st != nil {
		// An interface statistics block, so readers see the kernel's
		// drops next to the frames.
		now := time.Now()
		if err := s.w.WriteInterfaceStats(0, pcapgo.NgInterfaceStatistics{
			LastUpdate: now, StartTime: s.start, EndTime: now,
			PacketsReceived: st.Read, PacketsDropped: st.Dropped,
		}); err != nil {
			return err
		}
	}
	return s.w.Flush()
}

type textSink struct {
	w    *bufio.Writer
	json bool
	dev  string
	kind tapdev.Kind
	line []byte
	enc  *json.Encoder
}

func (s *textSink) frame(ts time.Time, data []byte) error {
	d := Decode(data, s.kind)
	if s.json {
		d.Time, d.Device = ts.UTC().Format(time.RFC3339Nano), s.dev
		if s.enc == nil {
			s.enc = json.NewEncoder(s.w)
			s.enc.SetEscapeHTML(false) // keep "a > b" readable
		}
		return s.enc.Encode(d)
	}
	s.line = ts.AppendFormat(s.line[:0], "15:04:05.000000")
	s.line = append(s.line, ' ')
	s.line = append(s.line, s.dev...)
	s.line = append(s.line, ' ')
	s.line = append(s.line, d.Summary...)
	s.line = append(s.line, '\n')
	_, err := s.w.Write(s.line)
	return err
}

func (s *textSink) event(ev events.Event) error {
	if s.json {
		if s.enc == nil {
			s.enc = json.NewEncoder(s.w)
			s.enc.SetEscapeHTML(false)
		}
		return s.enc.Encode(struct {
			Event events.Event `json:"event"`
		}{ev})
	}
	return events.WriteText(s.w, ev)
}

func (s *textSink) flush(bool, *Result) error { return s.w.Flush() }

// Frame is the decoded summary of one frame, as --json prints it.
type Frame struct {
	Time    string `json:"time,omitempty"`
	Device  string `json:"dev,omitempty"`
	Length  int    `json:"len"`
	SrcMAC  string `json:"src_mac,omitempty"`
	DstMAC  string `json:"dst_mac,omitempty"`
	Proto   string `json:"proto"`
	Src     string `json:"src,omitempty"`
	Dst     string `json:"dst,omitempty"`
	SrcPort uint16 `json:"sport,omitempty"`
	DstPort uint16 `json:"dport,omitempty"`
	Summary string `json:"summary"`
}

// Decode summarises a frame read from a device of kind k (Ethernet for
// TAP, raw IP for TUN) the way tcpdump's one-line output does.
func Decode(data []byte, k tapdev.Kind) Frame {
	f := Frame{Length: len(data)}
	first := layers.LayerTypeEthernet
	if k == tapdev.TUN {
		switch {
		case len(data) > 0 && data[0]>>4 == 4:
			first = layers.LayerTypeIPv4
		case len(data) > 0 && data[0]>>4 == 6:
			first = layers.LayerTypeIPv6
		default:
			f.Proto, f.Summary = "unknown", fmt.Sprintf("unknown packet, length %d", len(data))
			return f
		}
	}
	p := gopacket.NewPacket(data, first, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	var b strings.Builder
	if eth, ok := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); ok {
		f.SrcMAC, f.DstMAC = eth.SrcMAC.String(), eth.DstMAC.String()
		f.Proto = "ethertype 0x" + strconv.FormatUint(uint64(eth.EthernetType), 16)
	}
	switch {
	case p.Layer(layers.LayerTypeARP) != nil:
		a := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		f.Proto = "arp"
		f.Src, f.Dst = net.IP(a.SourceProtAddress).String(), net.IP(a.DstProtAddress).String()
		switch a.Operation {
		case layers.ARPRequest:
			fmt.Fprintf(&b, "ARP, Request who-has %s tell %s", f.Dst, f.Src)
		case layers.ARPReply:
			fmt.Fprintf(&b, "ARP, Reply %s is-at %s", f.Src, net.HardwareAddr(a.SourceHwAddress))
		default:
			fmt.Fprintf(&b, "ARP, op %d", a.Operation)
		}
	case p.NetworkLayer() != nil && (p.Layer(layers.LayerTypeIPv4) != nil || p.Layer(layers.LayerTypeIPv6) != nil):
		ipv := "IP"
		if ip4, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			f.Src, f.Dst, f.Proto = ip4.SrcIP.String(), ip4.DstIP.String(), "ipv4"
		} else {
			ip6 := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			f.Src, f.Dst, f.Proto, ipv = ip6.SrcIP.String(), ip6.DstIP.String(), "ipv6", "IP6"
		}
		b.WriteString(ipv + " ")
		switch t := p.TransportLayer().(type) {
		case *layers.TCP:
			f.Proto += "/tcp"
			f.SrcPort, f.DstPort = uint16(t.SrcPort), uint16(t.DstPort)
			fmt.Fprintf(&b, "%s.%d > %s.%d: TCP [%s], seq %d", f.Src, f.SrcPort, f.Dst, f.DstPort, tcpFlags(t), t.Seq)
		case *layers.UDP:
			f.Proto += "/udp"
			f.SrcPort, f.DstPort = uint16(t.SrcPort), uint16(t.DstPort)
			fmt.Fprintf(&b, "%s.%d > %s.%d: UDP, payload %d", f.Src, f.SrcPort, f.Dst, f.DstPort, len(t.Payload))
		default:
			fmt.Fprintf(&b, "%s > %s: ", f.Src, f.Dst)
			if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
				f.Proto += "/icmp"
				b.WriteString("ICMP " + icmp4Text(ic))
			} else if ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
				f.Proto += "/icmp6"
				b.WriteString("ICMP6 " + icmp6Text(p, ic))
			} else {
				nl := p.NetworkLayer()
				if ip4, ok := nl.(*layers.IPv4); ok {
					b.WriteString(strings.ToLower(ip4.Protocol.String()))
				} else {
					b.WriteString(strings.ToLower(nl.(*layers.IPv6).NextHeader.String()))
				}
			}
		}
	default:
		if f.Proto == "" {
			f.Proto = "unknown"
		}
		b.WriteString(f.Proto)
	}
	fmt.Fprintf(&b, ", length %d", len(data))
	f.Summary = b.String()
	return f
}

func tcpFlags(t *layers.TCP) string {
	var s []byte
	for _, fl := range []struct {
		on bool
		c  byte
	}{{t.SYN, 'S'}, {t.FIN, 'F'}, {t.PSH, 'P'}, {t.RST, 'R'}, {t.URG, 'U'}} {
		if fl.on {
			s = append(s, fl.c)
		}
	}
	if t.ACK {
		s = append(s, '.')
	}
	if len(s) == 0 {
		return "none"
	}
	return string(s)
}

func icmp4Text(ic *layers.ICMPv4) string {
	switch ic.TypeCode.Type() {
	case layers.ICMPv4TypeEchoRequest:
		return fmt.Sprintf("echo request, id %d, seq %d", ic.Id, ic.Seq)
	case layers.ICMPv4TypeEchoReply:
		return fmt.Sprintf("echo reply, id %d, seq %d", ic.Id, ic.Seq)
	}
	return strings.ToLower(ic.TypeCode.String())
}

func icmp6Text(p gopacket.Packet, ic *layers.ICMPv6) string {
	switch ic.TypeCode.Type() {
	case layers.ICMPv6TypeEchoRequest, layers.ICMPv6TypeEchoReply:
		if e, ok := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo); ok {
			kind := "request"
			if ic.TypeCode.Type() == layers.ICMPv6TypeEchoReply {
				kind = "reply"
			}
			return fmt.Sprintf("echo %s, id %d, seq %d", kind, e.Identifier, e.SeqNumber)
		}
	case layers.ICMPv6TypeRouterSolicitation:
		return "router solicitation"
	case layers.ICMPv6TypeNeighborSolicitation:
		if ns, ok := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation); ok {
			return "neighbor solicitation, who has " + ns.TargetAddress.String()
		}
	case layers.ICMPv6TypeNeighborAdvertisement:
		if na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement); ok {
			return "neighbor advertisement, tgt is " + na.TargetAddress.String()
		}
	case 143:
		return "multicast listener report v2"
	}
	return strings.ToLower(ic.TypeCode.String())
}
