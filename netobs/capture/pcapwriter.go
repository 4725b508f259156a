package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"
)

const writeBuffer = 256 << 10

// PcapWriter writes one interface's packets as a classic pcap file with
// nanosecond timestamps. It implements Handler.
type PcapWriter struct {
	w   *bufio.Writer
	hdr [16]byte
}

// NewPcapWriter writes the pcap file header for ifc to w.
func NewPcapWriter(w io.Writer, ifc *Interface) (*PcapWriter, error) {
	pw := &PcapWriter{w: bufio.NewWriterSize(w, writeBuffer)}
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b23c4d) // nanosecond pcap
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], uint32(ifc.Snaplen))
	binary.LittleEndian.PutUint32(h[20:], uint32(ifc.LinkType))
	if _, err := pw.w.Write(h[:]); err != nil {
		return nil, err
	}
	return pw, pw.w.Flush()
}

// Packet writes one packet record.
func (pw *PcapWriter) Packet(p *Packet) error {
	h := pw.hdr[:]
	binary.LittleEndian.PutUint32(h[0:], uint32(p.Time/1e9))
	binary.LittleEndian.PutUint32(h[4:], uint32(p.Time%1e9))
	binary.LittleEndian.PutUint32(h[8:], uint32(p.CaptureLength()))
	binary.LittleEndian.PutUint32(h[12:], uint32(p.Length))
	pw.w.Write(h)
	if len(p.Head) > 0 {
		pw.w.Write(p.Head)
	}
	_, err := pw.w.Write(p.Data)
	return err
}

// Flush writes buffered records out.
func (pw *PcapWriter) Flush() error { return pw.w.Flush() }

// Ended does nothing: the pcap format has no place for it.
func (pw *PcapWriter) Ended(*Interface, error) {}

// PcapngWriter writes packets of several interfaces as one pcapng section:
// one interface description block per Interface, enhanced packet blocks,
// and interface statistics blocks at the end. It implements Handler.
type PcapngWriter struct {
	w     *bufio.Writer
	hdr   [28]byte
	trl   [8]byte // a field, not a local: bufio's Write would make it escape
	ifcs  []*Interface
	start time.Time
}

// pcapng block types and option codes.
const (
	ngSHB = 0x0A0D0D0A
	ngIDB = 0x00000001
	ngISB = 0x00000005
	ngEPB = 0x00000006

	optEnd         = 0
	optComment     = 1
	shbHardware    = 2
	shbOS          = 3
	shbUserAppl    = 4
	ifName         = 2
	ifDescription  = 3
	ifTsresol      = 9
	ifFilter       = 11
	ifOS           = 12
	isbStartTime   = 2
	isbEndTime     = 3
	isbIfRecv      = 4
	isbIfDrop      = 5
	isbFilterAccpt = 6
	isbOSDrop      = 7
	isbUsrDeliv    = 8
)

// NewPcapngWriter writes the section header and one interface block per
// interface; ifcs[i] must have ID i.
func NewPcapngWriter(w io.Writer, ifcs []*Interface, appName string) (*PcapngWriter, error) {
	nw := &PcapngWriter{w: bufio.NewWriterSize(w, writeBuffer), ifcs: ifcs, start: time.Now()}
	var opts []byte
	opts = addOpt(opts, shbOS, []byte(runtime.GOOS+"/"+runtime.GOARCH))
	opts = addOpt(opts, shbUserAppl, []byte(appName))
	opts = endOpts(opts)
	body := make([]byte, 16, 16+len(opts))
	binary.LittleEndian.PutUint32(body[0:], 0x1A2B3C4D)
	binary.LittleEndian.PutUint16(body[4:], 1)
	binary.LittleEndian.PutUint16(body[6:], 0)
	binary.LittleEndian.PutUint64(body[8:], ^uint64(0)) // section length unknown
	nw.block(ngSHB, append(body, opts...))
	for i, ifc := range ifcs {
		if ifc.ID != i {
			return nil, fmt.Errorf("pcapng: interface %s has ID %d at position %d", ifc.Name, ifc.ID, i)
		}
		body := make([]byte, 8)
		binary.LittleEndian.PutUint16(body[0:], uint16(ifc.LinkType))
		binary.LittleEndian.PutUint32(body[4:], uint32(ifc.Snaplen))
		var opts []byte
		opts = addOpt(opts, ifName, []byte(ifc.Name))
		if ifc.Description != "" {
			opts = addOpt(opts, ifDescription, []byte(ifc.Description))
		}
		opts = addOpt(opts, ifTsresol, []byte{9})
		if ifc.Filter != "" {
			opts = addOpt(opts, ifFilter, append([]byte{0}, ifc.Filter...)) // 0: libpcap filter string
		}
		opts = addOpt(opts, ifOS, []byte("Linux"))
		nw.block(ngIDB, append(body, endOpts(opts)...))
	}
	return nw, nw.w.Flush()
}

func addOpt(b []byte, code uint16, val []byte) []byte {
	var h [4]byte
	binary.LittleEndian.PutUint16(h[0:], code)
	binary.LittleEndian.PutUint16(h[2:], uint16(len(val)))
	b = append(b, h[:]...)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func endOpts(b []byte) []byte { return append(b, 0, 0, 0, 0) }

func (nw *PcapngWriter) block(typ uint32, body []byte) error {
	var h [8]byte
	total := uint32(12 + len(body))
	binary.LittleEndian.PutUint32(h[0:], typ)
	binary.LittleEndian.PutUint32(h[4:], total)
	nw.w.Write(h[:])
	nw.w.Write(body)
	_, err := nw.w.Write(h[4:8])
	return err
}

// Packet writes one enhanced packet block.
func (nw *PcapngWriter) Packet(p *Packet) error {
	caplen := p.CaptureLength()
	pad := (4 - caplen&3) & 3
	total := uint32(32 + caplen + pad)
	h := nw.hdr[:]
	binary.LittleEndian.PutUint32(h[0:], ngEPB)
	binary.LittleEndian.PutUint32(h[4:], total)
	binary.LittleEndian.PutUint32(h[8:], uint32(p.Interface.ID))
	binary.LittleEndian.PutUint32(h[12:], uint32(uint64(p.Time)>>32))
	binary.LittleEndian.PutUint32(h[16:], uint32(p.Time))
	binary.LittleEndian.PutUint32(h[20:], uint32(caplen))
	binary.LittleEndian.PutUint32(h[24:], uint32(p.Length))
	nw.w.Write(h)
	if len(p.Head) > 0 {
		nw.w.Write(p.Head)
	}
	nw.w.Write(p.Data)
	t := nw.trl[:pad+4]
	clear(t)
	binary.LittleEndian.PutUint32(t[pad:], total)
	_, err := nw.w.Write(t)
	return err
}

// Flush writes buffered blocks out.
func (nw *PcapngWriter) Flush() error { return nw.w.Flush() }

// Ended does nothing; the statistics block written at the end closes
// every interface's part.
func (nw *PcapngWriter) Ended(*Interface, error) {}

// WriteStats writes one interface statistics block per interface: packets
// received by the filter (isb_ifrecv), dropped by the kernel (isb_osdrop,
// and isb_ifdrop, the field Wireshark shows, as dumpcap writes it), and
// delivered to the file (isb_usrdeliv). stats[i] belongs to interface i.
func (nw *PcapngWriter) WriteStats(stats []Stats) error {
	if len(stats) != len(nw.ifcs) {
		return errors.New("pcapng: statistics for a different number of interfaces")
	}
	end := time.Now()
	for i, st := range stats {
		var opts []byte
		opts = addOpt(opts, isbStartTime, tsOpt(nw.start))
		opts = addOpt(opts, isbEndTime, tsOpt(end))
		opts = addOpt(opts, isbIfRecv, u64(st.Received))
		opts = addOpt(opts, isbIfDrop, u64(st.Dropped))
		opts = addOpt(opts, isbOSDrop, u64(st.Dropped))
		opts = addOpt(opts, isbUsrDeliv, u64(st.Captured))
		body := make([]byte, 12, 12+len(opts)+4)
		binary.LittleEndian.PutUint32(body[0:], uint32(i))
		copy(body[4:], tsOpt(end))
		if err := nw.block(ngISB, append(body, endOpts(opts)...)); err != nil {
			return err
		}
	}
	return nw.w.Flush()
}

// tsOpt encodes a timestamp in the if_tsresol=9 units as pcapng's high
// and low 32-bit halves.
func tsOpt(t time.Time) []byte {
	ns := uint64(t.UnixNano())
	b := make([]byte, 8)
	binary.LittleEndian.PutUint32(b[0:], uint32(ns>>32))
	binary.LittleEndian.PutUint32(b[4:], uint32(ns))
	return b
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, v)
	return b
}
