package attach

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/netobs/netobs/tapdev"
)

// FuzzInject feeds capture files to the --inject reader: it must refuse
// a damaged file with an error (before a device exists), never panic,
// and never hand out a record larger than a device takes. The corpus
// holds a good pcap and pcapng file, a truncated record, a capture length
// of 0xfffffff0 and a pcapng block with a bad length.
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
	})
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
