package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// recordHeader is the size of a packed packet record's header (see the
// Packets message in agentpb/agent.proto).
const recordHeader = 24

// flagOutgoing marks a packet the namespace sent.
const flagOutgoing = 1

// maxRecordData bounds one record's data: the largest snapshot length.
const maxRecordData = 262144

// ErrBadRecords: a Packets message's records are malformed.
var ErrBadRecords = errors.New("malformed packet records")

// record is one decoded packet record; data aliases the message.
type record struct {
	iface    uint32
	outgoing bool
	time     int64
	length   uint32
	data     []byte
}

// appendRecord appends one packet's record: head and data are written as
// one run of bytes.
func appendRecord(b []byte, iface uint32, outgoing bool, t int64, length int, head, data []byte) []byte {
	var flags uint32
	if outgoing {
		flags = flagOutgoing
	}
	b = binary.LittleEndian.AppendUint32(b, iface)
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint64(b, uint64(t))
	b = binary.LittleEndian.AppendUint32(b, uint32(length))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(head)+len(data)))
	b = append(b, head...)
	return append(b, data...)
}

// parseRecords calls fn for each record of b, in order. It checks every
// header against the bytes present, the interface count and the largest
// snapshot length before fn sees it, so fn may index interfaces with
// iface. An error names the record and leaves the rest unread.
func parseRecords(b []byte, nifc int, fn func(r *record) error) error {
	it := recordIter{b: b, nifc: nifc}
	for it.next() {
		if err := fn(&it.r); err != nil {
			return err
		}
	}
	return it.err
}

// recordIter walks the records of a batch as parseRecords does, without a
// call through a func value for each packet (the client's per-packet loop).
type recordIter struct {
	b    []byte
	nifc int
	n    int // records read
	r    record
	err  error // ErrBadRecords once a record is malformed
}

// next reads the next record into it.r; false at the end or on a
// malformed record (it.err).
func (it *recordIter) next() bool {
	b := it.b
	if len(b) == 0 || it.err != nil {
		return false
	}
	n := it.n
	if len(b) < recordHeader {
		it.err = fmt.Errorf("%w: record %d: %d bytes left, shorter than a header", ErrBadRecords, n, len(b))
		return false
	}
	r := &it.r
	r.iface = binary.LittleEndian.Uint32(b[0:])
	flags := binary.LittleEndian.Uint32(b[4:])
	r.time = int64(binary.LittleEndian.Uint64(b[8:]))
	r.length = binary.LittleEndian.Uint32(b[16:])
	caplen := binary.LittleEndian.Uint32(b[20:])
	switch {
	case int64(r.iface) >= int64(it.nifc):
		it.err = fmt.Errorf("%w: record %d: interface %d of %d", ErrBadRecords, n, r.iface, it.nifc)
	case flags&^flagOutgoing != 0:
		it.err = fmt.Errorf("%w: record %d: unknown flags %#x", ErrBadRecords, n, flags)
	case caplen > maxRecordData:
		it.err = fmt.Errorf("%w: record %d: %d bytes, more than %d", ErrBadRecords, n, caplen, maxRecordData)
	case uint64(caplen) > uint64(len(b)-recordHeader):
		it.err = fmt.Errorf("%w: record %d: %d bytes announced, %d present", ErrBadRecords, n, caplen, len(b)-recordHeader)
	case r.length < caplen:
		it.err = fmt.Errorf("%w: record %d: %d bytes captured of a %d-byte packet", ErrBadRecords, n, caplen, r.length)
	}
	if it.err != nil {
		return false
	}
	r.outgoing = flags&flagOutgoing != 0
	r.data = b[recordHeader : recordHeader+caplen : recordHeader+caplen]
	it.b = b[recordHeader+caplen:]
	it.n++
	return true
}

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
