package pktout

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"
)

const writeBuffer = 256 << 10

var zeros [4]byte // padding

// records buffers whole records (file headers, blocks, packets) and writes
// them out in large writes. When a write fails part-way (a full disk), a
// file is cut back to the end of the last record that reached it whole, so
// it stays readable to its end, and Written says how many packets it
// holds. Once a write has failed, every later call returns that error.
type records struct {
	w       io.Writer // as given: what is cut back
	out     io.Writer // what buf is written through (outputWriter)
	buf     []byte
	ends    []recordEnd // records in buf, in order
	base    int64       // w's offset when the writer started; -1 if w cannot be cut
	flushed int64       // bytes of whole records written to w
	packets uint64      // packet records written to w whole
	err     error
}

type recordEnd struct {
	end    int // offset in buf just past the record
	packet bool
}

// truncater is what a file needs for a failed write to be cut back.
type truncater interface {
	Seek(offset int64, whence int) (int64, error)
	Truncate(size int64) error
}

func newRecords(w io.Writer) *records {
	r := &records{w: w, out: outputWriter(w), buf: make([]byte, 0, writeBuffer), base: -1}
	if t, ok := w.(truncater); ok {
		if off, err := t.Seek(0, io.SeekCurrent); err == nil {
			r.base = off // a pipe fails with ESPIPE: nothing to cut
		}
	}
	return r
}

// end marks the end of a record appended to buf, and writes buf out once
// it is full.
func (r *records) end(packet bool) error {
	r.ends = append(r.ends, recordEnd{len(r.buf), packet})
	if len(r.buf) >= writeBuffer {
		return r.flush()
	}
	return nil
}

// flush writes every buffered record. A short write leaves in w only the
// records that reached it whole, cutting w back when it is a file.
func (r *records) flush() error {
	if r.err != nil {
		return r.err
	}
	if len(r.buf) == 0 {
		return nil
	}
	n, err := r.out.Write(r.buf)
	if err == nil && n < len(r.buf) {
		err = io.ErrShortWrite
	}
	whole := 0
	for _, e := range r.ends {
		if e.end > n {
			break
		}
		whole = e.end
		if e.packet {
			r.packets++
		}
	}
	r.flushed += int64(whole)
	r.buf, r.ends = r.buf[:0], r.ends[:0]
	if err != nil {
		r.err = err
		if n > whole {
			if r.base < 0 {
				r.err = fmt.Errorf("%w (the output ends in a partial record: it cannot be cut back)", err)
			} else if terr := r.w.(truncater).Truncate(r.base + r.flushed); terr != nil {
				r.err = errors.Join(err, fmt.Errorf("cut back to the last whole record: %w", terr))
			}
		}
	}
	return r.err
}

// PcapWriter writes one interface's packets as a classic pcap file with
// nanosecond timestamps. It implements Handler.
type PcapWriter struct {
	r *records
}

// NewPcapWriter writes the pcap file header for ifc to w.
func NewPcapWriter(w io.Writer, ifc *Interface) (*PcapWriter, error) {
	pw := &PcapWriter{r: newRecords(w)}
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b23c4d) // nanosecond pcap
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], uint32(ifc.Snaplen))
	binary.LittleEndian.PutUint32(h[20:], uint32(ifc.LinkType))
	pw.r.buf = append(pw.r.buf, h[:]...)
	pw.r.end(false)
	return pw, pw.r.flush()
}

// Packet writes one packet record.
func (pw *PcapWriter) Packet(p *Packet) error {
	if pw.r.err != nil {
		return pw.r.err
	}
	// One capacity check for the whole record, then stores into it.
	caplen := len(p.Head) + len(p.Data)
	b := pw.r.buf
	n := len(b)
	b = slices.Grow(b, 16+caplen)[:n+16+caplen]
	binary.LittleEndian.PutUint64(b[n:], uint64(uint32(p.Time/1e9))|uint64(uint32(p.Time%1e9))<<32)
	binary.LittleEndian.PutUint64(b[n+8:], uint64(uint32(caplen))|uint64(uint32(p.Length))<<32)
	copy(b[n+16+copy(b[n+16:], p.Head):], p.Data)
	pw.r.buf = b
	return pw.r.end(true)
}

// Flush writes buffered records out.
func (pw *PcapWriter) Flush() error { return pw.r.flush() }

// Written is the number of packets the output holds whole: all those
// handed to Packet once Flush has succeeded, fewer after a failed write.
func (pw *PcapWriter) Written() uint64 { return pw.r.packets }

// Ended does nothing: the pcap format has no place for it.
func (pw *PcapWriter) Ended(*Interface, error) {}

// PcapngWriter writes packets of several interfaces as one pcapng section:
// one interface description block per Interface, enhanced packet blocks,
// and interface statistics blocks at the end. It implements Handler.
type PcapngWriter struct {
	r     *records
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
	nw := &PcapngWriter{r: newRecords(w), ifcs: ifcs, start: time.Now()}
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
	return nw, nw.r.flush()
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
	if nw.r.err != nil {
		return nw.r.err
	}
	total := uint32(12 + len(body))
	b := nw.r.buf
	b = binary.LittleEndian.AppendUint32(b, typ)
	b = binary.LittleEndian.AppendUint32(b, total)
	b = append(b, body...)
	nw.r.buf = binary.LittleEndian.AppendUint32(b, total)
	return nw.r.end(false)
}

// Packet writes one enhanced packet block.
func (nw *PcapngWriter) Packet(p *Packet) error {
	if nw.r.err != nil {
		return nw.r.err
	}
	caplen := p.CaptureLength()
	pad := (4 - caplen&3) & 3
	total := uint32(32 + caplen + pad)
	b := nw.r.buf
	b = binary.LittleEndian.AppendUint32(b, ngEPB)
	b = binary.LittleEndian.AppendUint32(b, total)
	b = binary.LittleEndian.AppendUint32(b, uint32(p.Interface.ID))
	b = binary.LittleEndian.AppendUint32(b, uint32(uint64(p.Time)>>32))
	b = binary.LittleEndian.AppendUint32(b, uint32(p.Time))
	b = binary.LittleEndian.AppendUint32(b, uint32(caplen))
	b = binary.LittleEndian.AppendUint32(b, uint32(p.Length))
	b = append(b, p.Head...)
	b = append(b, p.Data...)
	b = append(b, zeros[:pad]...)
	nw.r.buf = binary.LittleEndian.AppendUint32(b, total)
	return nw.r.end(true)
}

// Flush writes buffered blocks out.
func (nw *PcapngWriter) Flush() error { return nw.r.flush() }

// Written is the number of packets the output holds whole: all those
// handed to Packet once Flush has succeeded, fewer after a failed write.
func (nw *PcapngWriter) Written() uint64 { return nw.r.packets }

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
	return nw.r.flush()
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
