package agent

import (
	"bytes"
	"errors"
	"testing"
)

func TestRecordsRoundTrip(t *testing.T) {
	var b []byte
	b = appendRecord(b, 0, false, 1_700_000_000_123456789, 60, []byte{1, 2}, []byte{3, 4, 5})
	b = appendRecord(b, 2, true, 1_700_000_000_123456790, 1500, nil, bytes.Repeat([]byte{9}, 100))
	var got []record
	err := parseRecords(b, 3, func(r *record) error {
		c := *r
		c.data = append([]byte(nil), r.data...)
		got = append(got, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d records, want 2", len(got))
	}
	if r := got[0]; r.iface != 0 || r.outgoing || r.time != 1_700_000_000_123456789 || r.length != 60 || !bytes.Equal(r.data, []byte{1, 2, 3, 4, 5}) {
		t.Errorf("record 0 = %+v", r)
	}
	if r := got[1]; r.iface != 2 || !r.outgoing || r.length != 1500 || len(r.data) != 100 {
		t.Errorf("record 1 = %+v", r)
	}
	// Every malformation is refused with ErrBadRecords.
	for name, bad := range map[string][]byte{
		"short header":   b[:10],
		"short data":     b[:len(b)-1],
		"bad interface":  appendRecord(nil, 3, false, 1, 10, nil, []byte{1}),
		"caplen > len":   appendRecord(nil, 0, false, 1, 1, nil, []byte{1, 2}),
		"unknown flags":  append([]byte{0, 0, 0, 0, 2, 0, 0, 0}, make([]byte, 16)...),
		"caplen too big": append(append([]byte(nil), make([]byte, 20)...), 0, 0, 0x10, 0),
	} {
		if err := parseRecords(bad, 3, func(*record) error { return nil }); !errors.Is(err, ErrBadRecords) {
			t.Errorf("%s: err = %v, want ErrBadRecords", name, err)
		}
	}
}

// FuzzParseRecords: records come from the network; no input may make the
// parser panic or hand out data beyond the message, and what it accepts
// encodes back to the same bytes.
func FuzzParseRecords(f *testing.F) {
	f.Add(appendRecord(nil, 0, true, 42, 64, nil, make([]byte, 64)), 1)
	f.Add(appendRecord(appendRecord(nil, 1, false, 1, 10, []byte{1}, []byte{2}), 0, false, 2, 2, nil, []byte{3, 4}), 2)
	f.Add([]byte{1, 2, 3}, 1)
	f.Fuzz(func(t *testing.T, b []byte, nifc int) {
		if nifc < 0 || nifc > 1<<16 {
			return
		}
		var out []byte
		err := parseRecords(b, nifc, func(r *record) error {
			if int(r.iface) >= nifc || uint32(len(r.data)) > r.length || len(r.data) > maxRecordData {
				t.Fatalf("accepted a bad record %+v", r)
			}
			out = appendRecord(out, r.iface, r.outgoing, r.time, int(r.length), nil, r.data)
			return nil
		})
		if err == nil && !bytes.Equal(out, b) {
			t.Fatalf("accepted records do not encode back to the input")
		}
		if err != nil && !errors.Is(err, ErrBadRecords) {
			t.Fatalf("error %v is not ErrBadRecords", err)
		}
	})
}
