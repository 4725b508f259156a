package pktout_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/pktout"
)

func TestPcapngWriterStats(t *testing.T) {
	ifcs := []*pktout.Interface{
		{ID: 0, Name: "eth0@a", Description: "network namespace net:[1]", LinkType: pktout.LinkEthernet, Snaplen: 100, Filter: "icmp"},
		{ID: 1, Name: "any@b", LinkType: pktout.LinkLinuxSLL, Snaplen: 100},
	}
	var buf bytes.Buffer
	w, err := pktout.NewPcapngWriter(&buf, ifcs, "test")
	if err != nil {
		t.Fatal(err)
	}
	frame := bytes.Repeat([]byte{0xab}, 61)
	w.Packet(&pktout.Packet{Interface: ifcs[0], Time: 1_700_000_000_123456789, Length: 61, Data: frame})
	w.Packet(&pktout.Packet{Interface: ifcs[1], Time: 1_700_000_001_000000000, Length: 90, Head: make([]byte, 16), Data: frame[:20]})
	if err := w.WriteStats([]pktout.Stats{{Received: 5, Dropped: 3, Captured: 2}, {Received: 1 << 33, Captured: 1}}); err != nil {
		t.Fatal(err)
	}
	f := t.TempDir() + "/x.pcapng"
	if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	pkts, ifs, err := nstest.ReadPcap(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != 2 || !bytes.Equal(pkts[0].Data, frame) || pkts[0].Time != 1_700_000_000_123456789 || pkts[0].Interface != 0 {
		t.Fatalf("first packet: %+v", pkts)
	}
	if p := pkts[1]; len(p.Data) != 36 || p.Length != 90 || p.Interface != 1 {
		t.Fatalf("second packet: %+v", p)
	}
	if len(ifs) != 2 || ifs[0].Name != "eth0@a" || ifs[0].Description != "network namespace net:[1]" || ifs[0].Filter != "icmp" || ifs[1].LinkType != 113 {
		t.Fatalf("interfaces: %+v", ifs)
	}
	if s := ifs[0]; s.IfRecv != 5 || s.OSDrop != 3 || s.IfDrop != 3 || s.UsrDeliv != 2 {
		t.Fatalf("interface 0 statistics %+v", s)
	}
	if s := ifs[1]; s.IfRecv != 1<<33 {
		t.Fatalf("interface 1 statistics %+v, want 2^33 received (64 bits)", s)
	}
	if _, err := exec.LookPath("tshark"); err == nil {
		out, err := exec.Command("tshark", "-r", f, "-T", "fields", "-e", "frame.interface_name").Output()
		if err != nil || strings.Fields(string(out))[1] != "any@b" {
			t.Fatalf("tshark: %v %q", err, out)
		}
	}
}

// fullDisk is a file that takes limit bytes, then fails as a full disk
// does: a short write, then ENOSPC.
type fullDisk struct {
	*os.File
	limit int
}

func (d *fullDisk) Write(b []byte) (int, error) {
	if len(b) <= d.limit {
		d.limit -= len(b)
		return d.File.Write(b)
	}
	n, _ := d.File.Write(b[:d.limit])
	d.limit = 0
	return n, syscall.ENOSPC
}

// TestWriterDiskFull: when the disk fills, the file is cut back to the
// last whole packet, so it is readable to its end, and Written says how
// many packets it holds; later packets get the error.
func TestWriterDiskFull(t *testing.T) {
	ifc := &pktout.Interface{ID: 0, Name: "eth0@a", LinkType: pktout.LinkEthernet, Snaplen: 2000}
	for _, format := range []string{"pcap", "pcapng"} {
		for _, limit := range []int{10, 300, 5000, 100000, 300000, 500001} {
			path := t.TempDir() + "/x." + format
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			d := &fullDisk{File: f, limit: limit}
			var h interface {
				Packet(*pktout.Packet) error
				Flush() error
				Written() uint64
			}
			if format == "pcap" {
				h, err = pktout.NewPcapWriter(d, ifc)
			} else {
				h, err = pktout.NewPcapngWriter(d, []*pktout.Interface{ifc}, "test")
			}
			sent := 0
			for i := 0; err == nil && i < 1000; i++ {
				frame := bytes.Repeat([]byte{byte(i)}, 60+i%1400)
				if err = h.Packet(&pktout.Packet{Interface: ifc, Time: int64(i) * 1e6, Length: len(frame), Data: frame}); err == nil {
					sent++
				}
			}
			if err == nil {
				err = h.Flush()
			}
			f.Close()
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("%s, %d bytes free: error %v, want ENOSPC", format, limit, err)
			}
			if h != nil && h.Packet(&pktout.Packet{Interface: ifc, Data: []byte{1}, Length: 1}) == nil {
				t.Fatalf("%s, %d bytes free: a packet after the failure was accepted", format, limit)
			}
			var written uint64
			if h != nil {
				written = h.Written()
			}
			pkts, _, rerr := nstest.ReadPcap(path)
			if limit < 100 {
				// Not even the file header fitted: the file is empty.
				if st, _ := os.Stat(path); st.Size() != 0 || written != 0 {
					t.Fatalf("%s, %d bytes free: %d bytes, %d packets written", format, limit, st.Size(), written)
				}
				continue
			}
			if rerr != nil || uint64(len(pkts)) != written || written == 0 || written > uint64(sent) {
				t.Fatalf("%s, %d bytes free: file reads %d packets (%v), writer says %d, %d accepted", format, limit, len(pkts), rerr, written, sent)
			}
			for i, p := range pkts {
				if len(p.Data) != 60+i%1400 || p.Data[0] != byte(i) {
					t.Fatalf("%s: packet %d is %d bytes of %d", format, i, len(p.Data), p.Data[0])
				}
			}
		}
	}
}

// TestWriterRegularFile: a regular file gets exactly the bytes any other
// writer gets (on Linux they go through raw write(2) calls), across
// several buffer flushes, and a write that fails is reported.
func TestWriterRegularFile(t *testing.T) {
	ifc := &pktout.Interface{ID: 0, Name: "eth0@a", LinkType: pktout.LinkEthernet, Snaplen: 2000}
	write := func(w io.Writer) (uint64, error) {
		h, err := pktout.NewPcapWriter(w, ifc)
		if err != nil {
			return 0, err
		}
		for i := 0; i < 2000; i++ { // about 1.5 MB: several flushes
			frame := bytes.Repeat([]byte{byte(i)}, 60+i%1400)
			if err := h.Packet(&pktout.Packet{Interface: ifc, Time: int64(i) * 1e6, Length: len(frame) + i%3, Data: frame}); err != nil {
				return h.Written(), err
			}
		}
		err = h.Flush()
		return h.Written(), err
	}
	var want bytes.Buffer
	if _, err := write(&want); err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/x.pcap"
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := write(f)
	f.Close()
	if err != nil || n != 2000 {
		t.Fatalf("regular file: %d packets written, error %v", n, err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("regular file holds %d bytes that differ from the %d written to a buffer", len(got), want.Len())
	}
	pkts, _, err := nstest.ReadPcap(path)
	if err != nil || len(pkts) != 2000 {
		t.Fatalf("reading it back: %d packets, %v", len(pkts), err)
	}

	ro, err := os.Open(path) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if n, err := write(ro); !errors.Is(err, syscall.EBADF) || n != 0 {
		t.Fatalf("read-only file: %d packets written, error %v, want EBADF", n, err)
	}
}
