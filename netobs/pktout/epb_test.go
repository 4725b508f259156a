package pktout_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/pktout"
)

// epbPackets are packets of two interfaces with every padding length.
func epbPackets(ifcs []*pktout.Interface, n int) []pktout.Packet {
	var ps []pktout.Packet
	for i := 0; i < n; i++ {
		data := bytes.Repeat([]byte{byte(i)}, 40+i%7)
		ps = append(ps, pktout.Packet{Interface: ifcs[i%2], Time: 1_700_000_000_000_000_000 + int64(i)*1001, Length: len(data) + i%3, Data: data})
	}
	return ps
}

// TestEnhancedPacketsAsWritten: blocks made by AppendEnhancedPacket and
// written whole by WriteEnhancedPackets give the file Packet gives, byte
// for byte; ReadEnhancedPacket and CheckEnhancedPackets read them back,
// and tshark reads the file.
func TestEnhancedPacketsAsWritten(t *testing.T) {
	ifcs := []*pktout.Interface{
		{ID: 0, Name: "eth0@a", LinkType: pktout.LinkEthernet, Snaplen: 100},
		{ID: 1, Name: "eth1@a", LinkType: pktout.LinkEthernet, Snaplen: 100},
	}
	ps := epbPackets(ifcs, 50)
	var one, whole bytes.Buffer
	w1, err := pktout.NewPcapngWriter(&one, ifcs, "test")
	if err != nil {
		t.Fatal(err)
	}
	w2, err := pktout.NewPcapngWriter(&whole, ifcs, "test")
	if err != nil {
		t.Fatal(err)
	}
	// Appended into memory that held other bytes: the padding must still
	// be zeros.
	blocks := bytes.Repeat([]byte{0xff}, 1<<16)[:0]
	for i := range ps {
		if err := w1.Packet(&ps[i]); err != nil {
			t.Fatal(err)
		}
		blocks = pktout.AppendEnhancedPacket(blocks, &ps[i])
	}
	captured := make([]uint64, 2)
	n, count, err := pktout.CheckEnhancedPackets(blocks, []uint32{100, 100}, captured)
	if err != nil || n != len(blocks) || count != 50 || captured[0] != 25 || captured[1] != 25 {
		t.Fatalf("CheckEnhancedPackets = %d, %d, %v (per interface %v); want %d, 50, nil (25, 25)", n, count, err, captured, len(blocks))
	}
	// Two runs, split at a block boundary.
	first := 0
	for i := 0; i < 20; i++ {
		_, size, err := pktout.ReadEnhancedPacket(blocks[first:], 2, 100)
		if err != nil {
			t.Fatal(err)
		}
		first += size
	}
	if err := w2.WriteEnhancedPackets(blocks[:first], 20); err != nil {
		t.Fatal(err)
	}
	if err := w2.WriteEnhancedPackets(blocks[first:], 30); err != nil {
		t.Fatal(err)
	}
	w1.Flush()
	if w2.Written() != 50 || w1.Written() != 50 {
		t.Fatalf("Written: %d and %d, want 50", w1.Written(), w2.Written())
	}
	if !bytes.Equal(one.Bytes(), whole.Bytes()) {
		t.Fatal("the blocks written whole differ from the packets written one by one")
	}
	for off, i := 0, 0; off < len(blocks); i++ {
		p, size, err := pktout.ReadEnhancedPacket(blocks[off:], 2, 100)
		if err != nil {
			t.Fatal(err)
		}
		want := ps[i]
		if pad := blocks[off+28+len(p.Data) : off+size-4]; !bytes.Equal(pad, make([]byte, len(pad))) {
			t.Fatalf("block %d: padding %x, want zeros", i, pad)
		}
		if p.Interface != uint32(want.Interface.ID) || p.Time != want.Time || p.Length != uint32(want.Length) || !bytes.Equal(p.Data, want.Data) {
			t.Fatalf("block %d read back as %+v, want %+v", i, p, want)
		}
		off += size
	}
	path := t.TempDir() + "/x.pcapng"
	if err := os.WriteFile(path, whole.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	got, _, err := nstest.ReadPcap(path)
	if err != nil || len(got) != 50 {
		t.Fatalf("tshark: %d packets, %v; want 50", len(got), err)
	}
}

// TestEnhancedPacketsRefused: each way a block can differ from what
// AppendEnhancedPacket writes is refused by both readers, at the same
// place, and the blocks before it are counted.
func TestEnhancedPacketsRefused(t *testing.T) {
	ifc := &pktout.Interface{ID: 1, Snaplen: 100}
	good := pktout.AppendEnhancedPacket(nil, &pktout.Packet{Interface: ifc, Time: 5, Length: 70, Data: bytes.Repeat([]byte{7}, 61)})
	set := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
	}
	cases := map[string]func([]byte) []byte{
		"type":      set(0, 1),
		"interface": set(8, 2),
		"snaplen": func(b []byte) []byte {
			return pktout.AppendEnhancedPacket(b[:0], &pktout.Packet{Interface: ifc, Length: 200, Data: make([]byte, 101)})
		},
		"length < caplen": set(24, 60),
		"block length":    set(4, uint32(len(good)+4)),
		"trailer":         set(len(good)-4, 1),
		"truncated":       func(b []byte) []byte { return b[:len(b)-1] },
		"short":           func(b []byte) []byte { return b[:20] },
	}
	for name, spoil := range cases {
		bad := spoil(append([]byte(nil), good...))
		run := append(append(append([]byte(nil), good...), good...), bad...)
		captured := make([]uint64, 2)
		n, count, err := pktout.CheckEnhancedPackets(run, []uint32{100, 100}, captured)
		if !errors.Is(err, pktout.ErrBadBlock) || n != 2*len(good) || count != 2 || captured[1] != 2 {
			t.Errorf("%s: CheckEnhancedPackets = %d, %d, %v; want %d, 2, ErrBadBlock", name, n, count, err, 2*len(good))
		}
		off := 2 * len(good)
		if _, _, err := pktout.ReadEnhancedPacket(run[off:], 2, 100); !errors.Is(err, pktout.ErrBadBlock) {
			t.Errorf("%s: ReadEnhancedPacket: %v, want ErrBadBlock", name, err)
		}
	}
}

// TestWriteEnhancedPacketsDiskFull: a run that fills the disk part-way
// is cut back to its last whole block, as packets written one by one are.
func TestWriteEnhancedPacketsDiskFull(t *testing.T) {
	ifcs := []*pktout.Interface{{ID: 0, Name: "eth0@a", LinkType: pktout.LinkEthernet, Snaplen: 100}, {ID: 1, Name: "eth1@a", LinkType: pktout.LinkEthernet, Snaplen: 100}}
	ps := epbPackets(ifcs, 100)
	var blocks []byte
	for i := range ps {
		blocks = pktout.AppendEnhancedPacket(blocks, &ps[i])
	}
	for _, limit := range []int{500, 1000, 3333} {
		path := t.TempDir() + "/x.pcapng"
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w, err := pktout.NewPcapngWriter(&fullDisk{File: f, limit: limit}, ifcs, "test")
		if err != nil {
			t.Fatal(err)
		}
		err = w.WriteEnhancedPackets(blocks, 100)
		f.Close()
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("%d bytes free: %v, want ENOSPC", limit, err)
		}
		got, _, rerr := nstest.ReadPcap(path)
		if rerr != nil || uint64(len(got)) != w.Written() || w.Written() == 0 || w.Written() >= 100 {
			t.Fatalf("%d bytes free: file reads %d packets (%v), writer says %d", limit, len(got), rerr, w.Written())
		}
		for i, p := range got {
			if !bytes.Equal(p.Data, ps[i].Data) {
				t.Fatalf("%d bytes free: packet %d differs", limit, i)
			}
		}
	}
}

// FuzzReadEnhancedPacket: on any bytes the two readers agree, never
// panic, and what they accept is laid out as AppendEnhancedPacket lays it out.
func FuzzReadEnhancedPacket(f *testing.F) {
	ifc := &pktout.Interface{ID: 1}
	f.Add(pktout.AppendEnhancedPacket(nil, &pktout.Packet{Interface: ifc, Time: 1 << 40, Length: 70, Data: bytes.Repeat([]byte{7}, 61)}))
	f.Add(pktout.AppendEnhancedPacket(pktout.AppendEnhancedPacket(nil, &pktout.Packet{Interface: &pktout.Interface{}, Length: 1, Data: []byte{1}}),
		&pktout.Packet{Interface: ifc, Length: 4, Data: []byte{1, 2, 3, 4}}))
	f.Add([]byte{6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		captured := make([]uint64, 2)
		n, count, cerr := pktout.CheckEnhancedPackets(b, []uint32{1000, 1000}, captured)
		var again []byte
		off := 0
		var k uint64
		for off < len(b) {
			p, size, err := pktout.ReadEnhancedPacket(b[off:], 2, 1000)
			if err != nil {
				break
			}
			again = pktout.AppendEnhancedPacket(again, &pktout.Packet{Interface: &pktout.Interface{ID: int(p.Interface)}, Time: p.Time, Length: int(p.Length), Data: p.Data})
			off += size
			k++
		}
		if off != n || k != count || (cerr == nil) != (n == len(b)) || captured[0]+captured[1] != count {
			t.Fatalf("CheckEnhancedPackets: %d bytes, %d blocks, %v; ReadEnhancedPacket: %d bytes, %d blocks", n, count, cerr, off, k)
		}
		// The same blocks but for their padding bytes, which no reader
		// looks at.
		if len(again) != n {
			t.Fatal("accepted blocks are not what AppendEnhancedPacket writes for them")
		}
	})
}
