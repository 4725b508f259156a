package agent

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/netobs/netobs/netobs/agent/agentpb"
)

// TestCaptureCodecWire: a batch marshalled without copying is the same
// bytes as the protobuf encoding of its CaptureMessage, the frame decodes
// those bytes (and every other message) as protobuf does, and the batch's
// buffer goes back to its pool only once gRPC frees it.
func TestCaptureCodecWire(t *testing.T) {
	var c captureCodec
	records := appendRecord(make([]byte, 0, 4096), 0, true, 42, 64, nil, bytes.Repeat([]byte{7}, 64))
	records = appendRecord(records, 1, false, 43, 1500, []byte{1, 2}, bytes.Repeat([]byte{8}, 2000))
	pool := make(batchPool, 1)
	b := newPacketBatch(records, 2, pool)
	data, err := c.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	want, err := proto.Marshal(&agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Packets{Packets: &agentpb.Packets{Records: records, Count: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	got := data.Materialize()
	if !bytes.Equal(got, want) {
		t.Fatalf("marshalled batch differs from protobuf's encoding:\n got %x\nwant %x", got[:16], want[:16])
	}
	// Under another codec a batch is its CaptureMessage.
	if other, err := proto.Marshal(b); err != nil || !bytes.Equal(other, want) {
		t.Errorf("proto.Marshal(batch) = %d bytes, %v; want the CaptureMessage's %d", len(other), err, len(want))
	}
	select {
	case <-pool:
		t.Fatal("buffer back in the pool before gRPC freed it")
	default:
	}
	data.Free()
	select {
	case back := <-pool:
		if cap(back) != cap(records) || len(back) != 0 {
			t.Errorf("pool got a buffer of len %d cap %d, want the batch's (cap %d), emptied", len(back), cap(back), cap(records))
		}
	default:
		t.Fatal("buffer not back in the pool once freed")
	}

	// The frame decodes the batch, and keeps decoding into the same
	// buffer; records alias it.
	var f captureFrame
	split := mem.BufferSlice{mem.SliceBuffer(want[:5]), mem.SliceBuffer(want[5:100]), mem.SliceBuffer(want[100:])}
	if err := c.Unmarshal(split, &f); err != nil {
		t.Fatal(err)
	}
	p := f.Msg.GetPackets()
	if p == nil || p.Count != 2 || !bytes.Equal(p.Records, records) {
		t.Fatalf("decoded %v", f.Msg)
	}
	buf := &f.buf[0]
	// Every other message, and another encoding of Packets (count
	// first), the protobuf way.
	for _, m := range []*agentpb.CaptureMessage{
		{Msg: &agentpb.CaptureMessage_Start{Start: &agentpb.Start{Id: "x", Interfaces: []*agentpb.Interface{{Name: "eth0@ns1", Snaplen: 262144}}}}},
		{Msg: &agentpb.CaptureMessage_Progress{Progress: &agentpb.Progress{Watermark: 99}}},
		{Msg: &agentpb.CaptureMessage_Final{Final: &agentpb.Final{Reason: agentpb.EndReason_END_REASON_COUNT}}},
		{Msg: &agentpb.CaptureMessage_Packets{Packets: &agentpb.Packets{Count: 3}}},
	} {
		enc, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(enc)}, &f); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(f.Msg, m) {
			t.Errorf("decoded %v, want %v", f.Msg, m)
		}
	}
	var alt []byte
	alt = protowire.AppendTag(alt, fieldPacketsCount, protowire.VarintType)
	alt = protowire.AppendVarint(alt, 2)
	alt = protowire.AppendTag(alt, fieldPacketsRecords, protowire.BytesType)
	alt = protowire.AppendBytes(alt, records)
	altMsg := protowire.AppendTag(nil, fieldCapturePackets, protowire.BytesType)
	altMsg = protowire.AppendBytes(altMsg, alt)
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(altMsg)}, &f); err != nil {
		t.Fatal(err)
	}
	if p := f.Msg.GetPackets(); p == nil || p.Count != 2 || !bytes.Equal(p.Records, records) {
		t.Errorf("count-first Packets decoded as %v", f.Msg)
	}
	if &f.buf[0] != buf {
		t.Error("frame buffer not reused")
	}
	// Garbage is refused, as protobuf refuses it.
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x12, 0x05, 0x0a})}, &f); err == nil {
		t.Error("truncated message accepted")
	}
}

// FuzzParsePacketsMessage: the short cut decodes exactly what protobuf
// decodes, and never accepts what protobuf refuses.
func FuzzParsePacketsMessage(f *testing.F) {
	for _, m := range []*agentpb.CaptureMessage{
		{Msg: &agentpb.CaptureMessage_Packets{Packets: &agentpb.Packets{Records: appendRecord(nil, 0, true, 42, 64, nil, make([]byte, 64)), Count: 1}}},
		{Msg: &agentpb.CaptureMessage_Packets{Packets: &agentpb.Packets{}}},
		{Msg: &agentpb.CaptureMessage_Progress{Progress: &agentpb.Progress{Watermark: 1}}},
	} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte{0x12, 0x04, 0x10, 0x01, 0x10, 0x02}) // count twice
	f.Fuzz(func(t *testing.T, b []byte) {
		records, count, ok := parsePacketsMessage(b)
		if !ok {
			return
		}
		var m agentpb.CaptureMessage
		if err := proto.Unmarshal(b, &m); err != nil {
			t.Fatalf("short cut accepted what protobuf refuses (%v)", err)
		}
		p := m.GetPackets()
		if p == nil {
			t.Fatalf("short cut accepted a %T", m.Msg)
		}
		if !bytes.Equal(p.Records, records) || p.Count != count {
			t.Fatalf("short cut decoded %d records bytes, count %d; protobuf %d, %d", len(records), count, len(p.Records), p.Count)
		}
		if len(records) > 0 && cap(records) != len(records) {
			t.Fatal("records not capped: an append would overwrite the message")
		}
	})
}
