package attach

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// pcapRecords reads the records of an uncompressed classic pcap file in
// place: a batch of frames is handed out as slices of the bufio.Reader's
// buffer, without a copy, and without pcapgo's per-record work (two
// io.ReadFull calls through an interface, a time.Time per record), which
// was most of what --inject did per frame besides the write itself.
type pcapRecords struct {
	br        *bufio.Reader // its buffer holds at least one whole record
	bigEndian bool
	// handed is the number of bytes, from br's read position, of the
	// records handed out by the last call; the next call discards them.
	handed int
}

// pcapRecordHeader is the size of a classic pcap record header.
const pcapRecordHeader = 16

// errTruncated: the file ends inside a record.
var errTruncated = errors.New("truncated")

// read appends up to limit frames to frames, as slices of the reader's
// buffer that stay valid until the next call. It stops before limit
// rather than refill the buffer under frames it already appended, so it
// always appends at least one frame or returns an error. io.EOF means the
// file ended where a record would begin. A damaged record (cut short, a
// capture length larger than a device takes or than the frame's own
// length) is an error when it is the first of a call; after other
// records, the call returns those and the next call the error.
func (p *pcapRecords) read(frames [][]byte, limit int) ([][]byte, error) {
	if _, err := p.br.Discard(p.handed); err != nil {
		return frames, err
	}
	p.handed = 0
	for k := 0; k < limit; k++ {
		// Peek never moves the buffer when what it asks for is already
		// buffered; asking for more refills it (moving what it holds),
		// which only the first record of a call may do.
		if k > 0 && p.handed+pcapRecordHeader > p.br.Buffered() {
			break
		}
		h, err := p.br.Peek(p.handed + pcapRecordHeader)
		if err != nil {
			if err == io.EOF && len(h) == 0 {
				return frames, io.EOF
			}
			return frames, peekErr(err)
		}
		h = h[p.handed:]
		var caplen, length uint32
		if p.bigEndian {
			caplen, length = binary.BigEndian.Uint32(h[8:12]), binary.BigEndian.Uint32(h[12:16])
		} else {
			caplen, length = binary.LittleEndian.Uint32(h[8:12]), binary.LittleEndian.Uint32(h[12:16])
		}
		if caplen > maxInjectFrame || caplen > length {
			if k > 0 {
				break
			}
			if caplen > maxInjectFrame {
				return frames, fmt.Errorf("%d bytes, more than the %d a device takes", caplen, maxInjectFrame)
			}
			return frames, fmt.Errorf("capture length %d exceeds the frame's length %d", caplen, length)
		}
		end := p.handed + pcapRecordHeader + int(caplen)
		if k > 0 && end > p.br.Buffered() {
			break
		}
		rec, err := p.br.Peek(end)
		if err != nil {
			return frames, peekErr(err)
		}
		frames = append(frames, rec[end-int(caplen):end:end])
		p.handed = end
	}
	return frames, nil
}

// peekErr maps the end of the file inside a record to errTruncated.
func peekErr(err error) error {
	if errors.Is(err, io.EOF) {
		return errTruncated
	}
	return err
}
