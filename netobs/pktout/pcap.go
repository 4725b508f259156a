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

// records buffers whole records (file headers, blocks, packets) and writes
// them out in large writes. When a write fails part-way (a full disk), a
// file is cut back to the end of the last record that reached it whole, so
// it stays readable to its end, and Written says how many packets it
// holds. Once a write has failed, every later call returns that error.
// Where records end is worked out again from the bytes (size) only when a
// write fails; appending a record costs no bookkeeping but a count.
type records struct {
	w       io.Writer // as given: what is cut back
	out     io.Writer // what buf is written through (outputWriter)
	buf     []byte
	pending uint64 // packet records in buf
	size    recordSize
	base    int64  // w's offset when the writer started; -1 if w cannot be cut
	flushed int64  // bytes of whole records written to w
	packets uint64 // packet records written to w whole
	err     error
}

// recordSize reads the record at the start of b (first: the first record
// of the output): its size, 0 if b does not hold it whole, and whether it
// is a packet.
type recordSize func(b []byte, first bool) (size int, packet bool)

// truncater is what a file needs for a failed write to be cut back.
type truncater interface {
	Seek(offset int64, whence int) (int64, error)
	Truncate(size int64) error
}

func newRecords(w io.Writer, size recordSize) *records {
	r := &records{w: w, out: outputWriter(w), buf: make([]byte, 0, writeBuffer), base: -1, size: size}
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
	if packet {
		r.pending++
	}
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
	whole, packets := len(r.buf), r.pending
	if err != nil {
		whole, packets = r.whole(r.buf, n)
	}
	r.packets += packets
	r.buf, r.pending = r.buf[:0], 0
	return r.wrote(whole, n, err)
}

// whole returns how many of the first n bytes of b, records written after
// those already flushed, make whole records, and how many packets those
// hold.
func (r *records) whole(b []byte, n int) (whole int, packets uint64) {
	for whole < n {
		size, packet := r.size(b[whole:], r.flushed == 0 && whole == 0)
		if size <= 0 || whole+size > n {
			break
		}
		whole += size
		if packet {
			packets++
		}
	}
	return whole, packets
}

// run writes b, whole records holding packets packets, straight from b
// after what is buffered.
func (r *records) run(b []byte, packets uint64) error {
	if err := r.flush(); err != nil {
		return err
	}
	n, err := r.out.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	whole := n
	if err != nil {
		whole, packets = r.whole(b, n)
	}
	r.packets += packets
	return r.wrote(whole, n, err)
}

// wrote records that n bytes reached w, the first whole of them ending a
// record, and err: after a failed write it cuts w back to the last whole
// record.
func (r *records) wrote(whole, n int, err error) error {
	r.flushed += int64(whole)
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
	pw := &PcapWriter{r: newRecords(w, pcapRecordSize)}
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

// pcapRecordSize is a recordSize for pcap: the file header first, then
// packet records.
func pcapRecordSize(b []byte, first bool) (int, bool) {
	if first {
		return 24, false
	}
	if len(b) < 16 {
		return 0, false
	}
	return 16 + int(binary.LittleEndian.Uint32(b[8:])), true
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

// pcapngBlockSize is a recordSize for pcapng: every block says its
// length; enhanced packet blocks are the packets.
func pcapngBlockSize(b []byte, _ bool) (int, bool) {
	if len(b) < 12 {
		return 0, false
	}
	size := binary.LittleEndian.Uint32(b[4:])
	if size < 12 || uint64(size) > uint64(len(b)) {
		return 0, false
	}
	return int(size), binary.LittleEndian.Uint32(b) == ngEPB
}

// NewPcapngWriter writes the section header and one interface block per
// interface; ifcs[i] must have ID i.
func NewPcapngWriter(w io.Writer, ifcs []*Interface, appName string) (*PcapngWriter, error) {
	nw := &PcapngWriter{r: newRecords(w, pcapngBlockSize), ifcs: ifcs, start: time.Now()}
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
	nw.r.buf = AppendEnhancedPacket(nw.r.buf, p)
	return nw.r.end(true)
}

// AppendEnhancedPacket appends p to b as the enhanced packet block a
// PcapngWriter writes for it: interface ID p.Interface.ID, timestamp in
// nanoseconds (if_tsresol 9), no options. The outgoing flag is not kept.
func AppendEnhancedPacket(b []byte, p *Packet) []byte {
	// One capacity check for the whole block, then stores into it.
	caplen := len(p.Head) + len(p.Data)
	total := epbHeader + 4 + caplen + (4-caplen&3)&3
	n := len(b)
	b = slices.Grow(b, total)[:n+total]
	h := b[n:]
	binary.LittleEndian.PutUint64(h[0:], ngEPB|uint64(uint32(total))<<32)
	binary.LittleEndian.PutUint64(h[8:], uint64(uint32(p.Interface.ID))|uint64(uint64(p.Time)>>32)<<32)
	binary.LittleEndian.PutUint64(h[16:], uint64(uint32(p.Time))|uint64(uint32(caplen))<<32)
	binary.LittleEndian.PutUint32(h[24:], uint32(p.Length))
	copy(h[epbHeader+copy(h[epbHeader:], p.Head):], p.Data)
	clear(h[epbHeader+caplen : total-4]) // padding: grown memory is not zeroed
	binary.LittleEndian.PutUint32(h[total-4:], uint32(total))
	return b
}

// epbHeader is the size of an enhanced packet block before its data.
const epbHeader = 28

// ErrBadBlock: bytes that should be enhanced packet blocks as
// AppendEnhancedPacket writes them are not.
var ErrBadBlock = errors.New("malformed pcapng enhanced packet block")

// EnhancedPacket is one enhanced packet block read by
// ReadEnhancedPacket; Data aliases the block.
type EnhancedPacket struct {
	Interface uint32
	Time      int64 // nanoseconds since the epoch
	Length    uint32
	Data      []byte
}

// ReadEnhancedPacket reads the enhanced packet block at the start of b,
// which must be laid out exactly as AppendEnhancedPacket lays it out (no
// options, padding to 4 bytes, the trailing length equal to the leading
// one), for an interface below nifc and with at most maxData bytes of
// data. It returns the block's size; an error wraps ErrBadBlock.
func ReadEnhancedPacket(b []byte, nifc int, maxData uint32) (EnhancedPacket, int, error) {
	var p EnhancedPacket
	if len(b) < epbHeader+4 {
		return p, 0, fmt.Errorf("%w: %d bytes left, shorter than a block", ErrBadBlock, len(b))
	}
	typ := binary.LittleEndian.Uint32(b[0:])
	total := binary.LittleEndian.Uint32(b[4:])
	p.Interface = binary.LittleEndian.Uint32(b[8:])
	p.Time = int64(uint64(binary.LittleEndian.Uint32(b[12:]))<<32 | uint64(binary.LittleEndian.Uint32(b[16:])))
	caplen := binary.LittleEndian.Uint32(b[20:])
	p.Length = binary.LittleEndian.Uint32(b[24:])
	switch {
	case typ != ngEPB:
		return p, 0, fmt.Errorf("%w: block type %#x", ErrBadBlock, typ)
	case int64(p.Interface) >= int64(nifc):
		return p, 0, fmt.Errorf("%w: interface %d of %d", ErrBadBlock, p.Interface, nifc)
	case caplen > maxData:
		return p, 0, fmt.Errorf("%w: %d bytes of data, more than %d", ErrBadBlock, caplen, maxData)
	case p.Length < caplen:
		return p, 0, fmt.Errorf("%w: %d bytes captured of a %d-byte packet", ErrBadBlock, caplen, p.Length)
	case uint64(total) != epbHeader+4+uint64(caplen)+uint64((4-caplen&3)&3):
		return p, 0, fmt.Errorf("%w: block length %d for %d bytes of data", ErrBadBlock, total, caplen)
	case uint64(total) > uint64(len(b)):
		return p, 0, fmt.Errorf("%w: %d bytes announced, %d present", ErrBadBlock, total, len(b))
	case binary.LittleEndian.Uint32(b[total-4:]) != total:
		return p, 0, fmt.Errorf("%w: trailing length differs", ErrBadBlock)
	}
	p.Data = b[epbHeader : epbHeader+caplen : epbHeader+caplen]
	return p, int(total), nil
}

// CheckEnhancedPackets checks the run of enhanced packet blocks b as
// ReadEnhancedPacket does, each for an interface i < len(snaplens) and
// with at most snaplens[i] bytes of data, and adds one to captured[i] for
// each. whole is the length of the blocks before the first malformed one
// (all of b when err is nil), packets their number. It is
// ReadEnhancedPacket's loop for a run, without a call per block.
func CheckEnhancedPackets(b []byte, snaplens []uint32, captured []uint64) (whole int, packets uint64, err error) {
	rest := b
	for len(rest) >= epbHeader+4 {
		total := binary.LittleEndian.Uint32(rest[4:])
		ifc := binary.LittleEndian.Uint32(rest[8:])
		caplen := binary.LittleEndian.Uint32(rest[20:])
		if binary.LittleEndian.Uint32(rest[0:]) != ngEPB || uint64(ifc) >= uint64(len(snaplens)) ||
			caplen > snaplens[ifc] || binary.LittleEndian.Uint32(rest[24:]) < caplen ||
			uint64(total) != epbHeader+4+uint64(caplen)+uint64((4-caplen&3)&3) || uint64(total) > uint64(len(rest)) ||
			binary.LittleEndian.Uint32(rest[total-4:]) != total {
			break
		}
		captured[ifc]++
		packets++
		rest = rest[total:]
	}
	whole = len(b) - len(rest)
	if len(rest) > 0 {
		// Say what is wrong with it, as ReadEnhancedPacket does.
		maxData := ^uint32(0)
		if _, _, err = ReadEnhancedPacket(rest, len(snaplens), maxData); err == nil {
			ifc := binary.LittleEndian.Uint32(rest[8:])
			err = fmt.Errorf("%w: %d bytes of data, more than the interface's snapshot length %d", ErrBadBlock, binary.LittleEndian.Uint32(rest[20:]), snaplens[ifc])
		}
	}
	return whole, packets, err
}

// WriteEnhancedPackets writes b, a run of whole enhanced packet blocks of
// this writer's interfaces holding packets packets (as ReadEnhancedPacket
// checks them), as it is: it is how a capture made elsewhere in pcapng
// blocks reaches the file without each packet being written again. A
// write that fails part-way leaves only whole blocks in a file, as Packet
// does.
func (nw *PcapngWriter) WriteEnhancedPackets(b []byte, packets uint64) error {
	return nw.r.run(b, packets)
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
