package attach

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/netobs/netobs/tapdev"
)

// FuzzInject feeds capture files to the --inject reader: it must refuse
// a damaged file with an error (before a device exists), never panic,
// and never hand out a record larger than a device takes. The corpus
// holds a good pcap and pcapng file, a truncated record, a record that is
// only a header, a capture length of 0xfffffff0 or larger than the
// frame's length, and a pcapng block with a bad length. A classic pcap
// file it accepts must give the frames pcapgo reads.
func FuzzInject(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		in, err := newInject("fuzz", r, r, tapdev.TAP)
		if err != nil {
			return
		}
		n := 0
		for {
			d, err := in.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("record %d: %v after the file was read through without error", n+1, err)
			}
			if len(d) > maxInjectFrame {
				t.Fatalf("record of %d bytes", len(d))
			}
			n++
		}
		if n != in.Frames {
			t.Fatalf("%d records, read ahead %d", n, in.Frames)
		}
		// A classic pcap file, read in place, gives what pcapgo reads.
		if len(b) >= 4 && isClassicPcap(b[:4]) {
			if want := pcapgoFrames(t, b, n); !equalFrames(readAll(t, b, 64), want) {
				t.Fatal("frames differ from pcapgo's")
			}
		}
	})
}

// pcapgoFrames reads the first n records of a classic pcap file with
// pcapgo, which must find them all.
func pcapgoFrames(t *testing.T, b []byte, n int) [][]byte {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("pcapgo: %v", err)
	}
	var frames [][]byte
	for i := 0; i < n; i++ {
		d, _, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("pcapgo, record %d: %v", i+1, err)
		}
		frames = append(frames, d)
	}
	return frames
}

// readAll reads every frame of a good file in batches of up to limit,
// checking that the frames of a batch keep their contents until the next
// batch is read.
func readAll(t *testing.T, b []byte, limit int) [][]byte {
	t.Helper()
	r := bytes.NewReader(b)
	in, err := newInject("test", r, r, tapdev.TAP)
	if err != nil {
		t.Fatal(err)
	}
	var all [][]byte
	var batch [][]byte
	for {
		batch, err = in.batch(batch[:0], limit)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 || len(batch) > limit {
			t.Fatalf("batch of %d frames, limit %d", len(batch), limit)
		}
		for _, f := range batch {
			all = append(all, bytes.Clone(f))
		}
		for i, f := range batch {
			if !bytes.Equal(f, all[len(all)-len(batch)+i]) {
				t.Fatalf("frame %d of a batch changed while the batch was read", i)
			}
		}
	}
	if len(all) != in.Frames {
		t.Fatalf("%d frames in batches, read ahead %d", len(all), in.Frames)
	}
	return all
}

func equalFrames(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestInjectBatches: frames read in batches out of the read buffer, in
// classic pcap files of either byte order and timestamp precision and in
// pcapng, are the frames pcapgo reads, whatever the batch size, with
// records of many sizes (the largest a device takes among them) crossing
// the buffer's end many times.
func TestInjectBatches(t *testing.T) {
	var frames [][]byte
	total := 0
	for i := 0; total < 5*injectBuffer; i++ {
		n := (i * 7919) % 3000
		switch i % 97 {
		case 13:
			n = maxInjectFrame
		case 14:
			n = 0
		}
		f := make([]byte, n)
		for j := range f {
			f[j] = byte(i + j)
		}
		frames = append(frames, f)
		total += n + 16
	}
	files := map[string][]byte{
		"pcap µs little-endian": writeClassic(t, frames, false, false),
		"pcap ns little-endian": writeClassic(t, frames, true, false),
		"pcap µs big-endian":    writeClassic(t, frames, false, true),
		"pcap ns big-endian":    writeClassic(t, frames, true, true),
		"pcapng":                writeNg(t, frames),
	}
	for name, b := range files {
		for _, limit := range []int{1, 64, 1000} {
			if got := readAll(t, b, limit); !equalFrames(got, frames) {
				t.Errorf("%s, batches of %d: %d frames, not the %d written", name, limit, len(got), len(frames))
			}
		}
	}
}

// writeClassic writes frames as a classic pcap file of Ethernet frames.
func writeClassic(t testing.TB, frames [][]byte, nanos, bigEndian bool) []byte {
	t.Helper()
	var order binary.AppendByteOrder = binary.LittleEndian
	if bigEndian {
		order = binary.BigEndian
	}
	magic := uint32(0xa1b2c3d4)
	if nanos {
		magic = 0xa1b23c4d
	}
	b := order.AppendUint32(nil, magic)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = order.AppendUint32(b, maxInjectFrame)
	b = order.AppendUint32(b, uint32(layers.LinkTypeEthernet))
	for i, f := range frames {
		b = order.AppendUint32(b, uint32(1700000000+i))
		b = order.AppendUint32(b, uint32(i))
		b = order.AppendUint32(b, uint32(len(f)))
		b = order.AppendUint32(b, uint32(len(f))+4)
		b = append(b, f...)
	}
	return b
}

func writeNg(t *testing.T, frames [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriter(&buf, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, 0), CaptureLength: len(f), Length: len(f)}, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestInjectDamaged: each damaged file of the corpus is refused with an
// error naming the record; the good ones give their one frame.
func TestInjectDamaged(t *testing.T) {
	for name, want := range map[string]string{
		"good-pcap":           "",
		"good-pcapng":         "",
		"truncated-record":    "record 2: truncated",
		"caplen-fffffff0":     "record 2:",
		"pcapng-bad-blocklen": "record 1:",
		"header-only-record":  "record 2: truncated",
		"caplen-over-length":  "record 2: capture length 60 exceeds the frame's length 59",
	} {
		b := corpusBytes(t, "testdata/fuzz/FuzzInject/"+name)
		r := bytes.NewReader(b)
		in, err := newInject(name, r, r, tapdev.TAP)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case want == "" && in.Frames != 1:
			t.Errorf("%s: %d frames, want 1", name, in.Frames)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: error %v, want one with %q", name, err, want)
		}
	}
}

// corpusBytes reads the one []byte value of a corpus file.
func corpusBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, v, _ := bytes.Cut(b, []byte("\n"))
	s := strings.TrimSpace(string(v))
	s, err = strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(s, "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

// BenchmarkInjectBatch: the reader's cost per 64-byte frame of a classic
// pcap file, read in batches of 64 as --inject does.
func BenchmarkInjectBatch(b *testing.B) {
	frames := make([][]byte, 100000)
	for i := range frames {
		frames[i] = make([]byte, 64)
	}
	file := writeClassic(b, frames, false, false)
	b.SetBytes(64)
	b.ResetTimer()
	var batch [][]byte
	for n := 0; n < b.N; {
		r := bytes.NewReader(file)
		in := &InjectFile{r: r, kind: tapdev.TAP}
		if err := in.open(); err != nil {
			b.Fatal(err)
		}
		for n < b.N {
			var err error
			if batch, err = in.batch(batch[:0], 64); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			n += len(batch)
		}
	}
}
