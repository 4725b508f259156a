package attach

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/netobs/pktout"
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
	// PCAP is a libpcap file with nanosecond timestamps.
	PCAP
	// PCAPNG is a pcapng file with one interface, the device, and its
	// statistics at the end (frames read and dropped by the kernel).
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
	// ReadQueue reads the frames from the device's queues (read(2) or
	// io_uring batches) instead of an AF_PACKET ring bound to the device
	// in the target. The ring (the default) costs no system call per
	// frame or batch, but sees only frames that pass the namespace's
	// packet taps (dev_queue_xmit_nit): those of the stack, of packet
	// sockets (qdisc bypass included) and of tc mirred, not those of the
	// kernel's pktgen or of XDP redirects into the device, which the
	// queue path reads (with the ring, they count as Dropped). Persistent
	// devices (Device.Persist: the discard filter would outlive Run) are
	// always read from their queues, and so are TUN devices when the
	// process may not load their eBPF discard filter (CAP_BPF).
	ReadQueue bool
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
	// Label and Owner, if set, name the namespace in those events as
	// events.Namespace's fields of the same names do (a container's
	// docker:web, and its runtime, ID and pod); Owner also goes into
	// every JSON frame (runtime, container_id, container, pod,
	// pod_namespace) and the pcapng interface description.
	Label string
	Owner *pktout.Owner
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
	// Dropped is the number of frames the namespace sent through the
	// device that the kernel dropped before netobs read them. Reading the
	// queues, it is the device's TX dropped counter (frames not read fast
	// enough). Reading the ring, it is the ring's drops (full ring) plus
	// the frames the device transmitted that the ring did not see (sent
	// before the ring was bound, or past the packet taps; those are not
	// counted after a stop on Count, when the ring has stopped while the
	// namespace may still send).
	Dropped uint64
	// Ring reports whether the frames were read through the AF_PACKET
	// ring rather than the device's queues.
	Ring bool
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
	// pcap reads an uncompressed classic pcap file in place; next reads
	// any other (pcapng, gzip) one record at a time, and batch copies
	// those records into arena.
	pcap  *pcapRecords
	next  func() ([]byte, error)
	arena []byte
	err   error     // from next, held back while a batch is handed out
	one   [1][]byte // Next's batch
	n     int       // records read
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

// injectBuffer is the size of the file's read buffer: it must hold a
// record header and the largest record, and no more, so that it stays in
// a core's cache (1 MiB was slower).
const injectBuffer = 288 << 10

// open reads the file header and sets up pcap or next.
func (in *InjectFile) open() error {
	in.n, in.err, in.pcap, in.next = 0, nil, nil, nil
	br := bufio.NewReaderSize(in.r, injectBuffer)
	magic, err := br.Peek(4)
	if err != nil {
		return errors.New("not a pcap or pcapng file (too short)")
	}
	if hdr, err := br.Peek(24); err == nil && isClassicPcap(magic) {
		// pcapgo checks the header; the records are read in place.
		r, err := pcapgo.NewReader(bytes.NewReader(hdr))
		if err != nil {
			return fmt.Errorf("not a pcap or pcapng file: %w", err)
		}
		in.LinkType = r.LinkType()
		br.Discard(24)
		in.pcap = &pcapRecords{br: br, bigEndian: magic[0] == 0xa1}
	} else if string(magic) == "\x0a\x0d\x0d\x0a" {
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

// isClassicPcap reports whether magic begins an uncompressed classic
// pcap file (microsecond or nanosecond timestamps, either byte order).
func isClassicPcap(magic []byte) bool {
	switch string(magic) {
	case "\xd4\xc3\xb2\xa1", "\xa1\xb2\xc3\xd4", "\x4d\x3c\xb2\xa1", "\xa1\xb2\x3c\x4d":
		return true
	}
	return false
}

func isRawIP(lt layers.LinkType) bool {
	return lt == layers.LinkTypeRaw || lt == layers.LinkTypeIPv4 || lt == layers.LinkTypeIPv6 || lt == 12 // 12: raw IP on OpenBSD-style writers
}

// Next returns the next frame, valid until the following call, or io.EOF
// at the end of the file. Any other error means the file is damaged at
// that record.
func (in *InjectFile) Next() ([]byte, error) {
	f, err := in.batch(in.one[:0], 1)
	if err != nil {
		return nil, err
	}
	return f[0], nil
}

// batch appends up to limit frames to frames, valid until the following
// call of batch or Next; it returns at least one frame, or io.EOF at the
// end of the file, or an error naming the damaged record. After frames
// that precede a damaged record it returns those, and the error on the
// next call.
func (in *InjectFile) batch(frames [][]byte, limit int) ([][]byte, error) {
	k := len(frames)
	var err error
	if in.pcap != nil {
		frames, err = in.pcap.read(frames, limit)
	} else {
		frames, err = in.copyBatch(frames, limit)
	}
	in.n += len(frames) - k
	switch {
	case err == nil || err == io.EOF:
		return frames, err
	case errors.Is(err, errTruncated) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return frames, fmt.Errorf("record %d: truncated", in.n+1)
	default:
		return frames, fmt.Errorf("record %d: %w", in.n+1, err)
	}
}

// copyBatch is batch for files read through next: the records are
// copied into the arena.
func (in *InjectFile) copyBatch(frames [][]byte, limit int) ([][]byte, error) {
	if in.err != nil {
		return frames, in.err
	}
	in.arena = in.arena[:0]
	var ends []int
	var err error
	for len(ends) < limit {
		var d []byte
		if d, err = in.next(); err == nil && len(d) > maxInjectFrame {
			err = fmt.Errorf("%d bytes, more than the %d a device takes", len(d), maxInjectFrame)
		}
		if err != nil {
			break
		}
		in.arena = append(in.arena, d...)
		ends = append(ends, len(in.arena))
	}
	prev := 0
	for _, e := range ends {
		frames = append(frames, in.arena[prev:e:e])
		prev = e
	}
	if len(ends) > 0 && err != nil {
		in.err, err = err, nil
	}
	return frames, err
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

// newSink makes the sink of the device dev in namespace ns; owner, if not
// nil, is the container the namespace belongs to, named in every frame
// (--json) and in the interface description.
func newSink(w io.Writer, f Format, dev string, k tapdev.Kind, ns string, owner *pktout.Owner) (sink, error) {
	if w == nil {
		return discard{}, nil
	}
	ifc := &pktout.Interface{Name: dev, Device: dev, Namespace: ns, Owner: owner,
		Description: "netobs attach, " + k.String() + " device in " + ns,
		LinkType:    pktout.LinkEthernet, Snaplen: snapLen}
	if owner != nil {
		ifc.Description += ", " + owner.Describe()
	}
	if k == tapdev.TUN {
		ifc.LinkType = pktout.LinkRaw
	}
	switch f {
	case Text, JSON:
		bw := bufio.NewWriterSize(w, 64<<10)
		return &textSink{w: bw, sw: pktout.NewSummaryWriter(bw, f == JSON), json: f == JSON, pkt: framePacket(ifc)}, nil
	case PCAP:
		pw, err := pktout.NewPcapWriter(w, ifc)
		if err != nil {
			return nil, err
		}
		return &fileSink{w: pw, pkt: framePacket(ifc)}, nil
	case PCAPNG:
		nw, err := pktout.NewPcapngWriter(w, []*pktout.Interface{ifc}, "netobs attach")
		if err != nil {
			return nil, err
		}
		return &fileSink{w: nw, ng: nw, pkt: framePacket(ifc)}, nil
	}
	return nil, fmt.Errorf("invalid format %v", f)
}

// snapLen covers the largest frame a TUN/TAP device passes (64 KiB IP
// packet plus link header), as tcpdump's default does.
const snapLen = 262144

// framePacket is the Packet a sink fills for every frame: frames read
// from the device are those the namespace sent through it.
func framePacket(ifc *pktout.Interface) *pktout.Packet {
	return &pktout.Packet{Interface: ifc, Outgoing: true}
}

type discard struct{}

func (discard) frame(time.Time, []byte) error { return nil }
func (discard) event(events.Event) error      { return nil }
func (discard) flush(bool, *Result) error     { return nil }

// packetWriter is what pktout's pcap and pcapng writers have in common.
type packetWriter interface {
	Packet(*pktout.Packet) error
	Flush() error
}

// fileSink writes pcap or pcapng through pktout.
type fileSink struct {
	w   packetWriter
	ng  *pktout.PcapngWriter // nil for pcap
	pkt *pktout.Packet
}

func (p *fileSink) frame(ts time.Time, data []byte) error {
	p.pkt.Time, p.pkt.Length, p.pkt.Data = ts.UnixNano(), len(data), data
	return p.w.Packet(p.pkt)
}

// A pcap or pcapng file has no place for events; Run writes them to Log.
func (p *fileSink) event(events.Event) error { return nil }

func (p *fileSink) flush(final bool, st *Result) error {
	if final && st != nil && p.ng != nil {
		// An interface statistics block, so readers see the kernel's
		// drops next to the frames: the device passed Read+Dropped
		// frames to netobs, Dropped of them were lost before reading.
		return p.ng.WriteStats([]pktout.Stats{{Received: st.Read + st.Dropped, Dropped: st.Dropped, Captured: st.Read}})
	}
	return p.w.Flush()
}

// textSink writes pktout's summaries, and events between them into the
// same buffer.
type textSink struct {
	w    *bufio.Writer
	sw   *pktout.SummaryWriter
	json bool
	pkt  *pktout.Packet
	enc  *json.Encoder
}

func (s *textSink) frame(ts time.Time, data []byte) error {
	s.pkt.Time, s.pkt.Length, s.pkt.Data = ts.UnixNano(), len(data), data
	return s.sw.Packet(s.pkt)
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

func (s *textSink) flush(bool, *Result) error { return s.sw.Flush() }
