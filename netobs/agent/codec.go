package agent

import (
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protov2 "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/netobs/netobs/netobs/agent/agentpb"
)

// captureCodec is gRPC's protobuf codec with two short cuts for the bulk
// of a capture's bytes, the Packets messages. The bytes on the wire are
// the same protobuf encoding; only copies are saved:
//
//   - Marshal of a *packetBatch hands the batch's own buffer to gRPC,
//     framed by a few bytes of protobuf header, instead of marshalling it
//     into a (zeroed) pooled buffer; gRPC gives the buffer back to the
//     batch's pool once it has written it to the connection.
//   - Unmarshal into a *captureFrame copies the message once into the
//     frame's reused buffer and, for a Packets message, lets the records
//     alias it instead of allocating a copy for each message.
//
// Everything else goes to the protobuf codec. The name is "proto", so
// peers without this codec see an ordinary protobuf call.
type captureCodec struct{}

var protoCodec = encoding.GetCodecV2(proto.Name)

func (captureCodec) Name() string { return proto.Name }

func (captureCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(*packetBatch); ok {
		return b.marshal(), nil
	}
	return protoCodec.Marshal(v)
}

func (captureCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*captureFrame); ok {
		return f.unmarshal(data)
	}
	return protoCodec.Unmarshal(data, v)
}

// Field numbers of CaptureMessage.packets, Packets.records and
// Packets.count (agentpb/agent.proto).
const (
	fieldCapturePackets = 2
	fieldPacketsRecords = 1
	fieldPacketsCount   = 2
)

// packetBatch is one Packets message whose records buffer goes back to
// pool once gRPC has written it. It is a proto.Message (the equivalent
// CaptureMessage), so under another codec it is marshalled, copied, the
// ordinary way and its buffer simply not reused.
type packetBatch struct {
	msg     *agentpb.CaptureMessage
	records *[]byte
	pool    mem.BufferPool
}

func newPacketBatch(records []byte, count uint32, pool mem.BufferPool) *packetBatch {
	return &packetBatch{
		msg:     &agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Packets{Packets: &agentpb.Packets{Records: records, Count: count}}},
		records: &records,
		pool:    pool,
	}
}

// ProtoReflect makes a packetBatch a proto.Message: the CaptureMessage it
// stands for.
func (b *packetBatch) ProtoReflect() protoreflect.Message { return b.msg.ProtoReflect() }

// marshal frames the records with the protobuf encoding of
// CaptureMessage{packets: Packets{records, count}}, without copying them.
func (b *packetBatch) marshal() mem.BufferSlice {
	records := *b.records
	count := uint64(b.msg.GetPackets().GetCount())
	inner := protowire.SizeTag(fieldPacketsRecords) + protowire.SizeBytes(len(records))
	if count != 0 {
		inner += protowire.SizeTag(fieldPacketsCount) + protowire.SizeVarint(count)
	}
	head := make([]byte, 0, 24)
	head = protowire.AppendTag(head, fieldCapturePackets, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(inner))
	head = protowire.AppendTag(head, fieldPacketsRecords, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(len(records)))
	data := mem.BufferSlice{mem.SliceBuffer(head), mem.NewBuffer(b.records, b.pool)}
	if count != 0 {
		var tail []byte
		tail = protowire.AppendTag(tail, fieldPacketsCount, protowire.VarintType)
		tail = protowire.AppendVarint(tail, count)
		data = append(data, mem.SliceBuffer(tail))
	}
	return data
}

// batchPool takes back the buffers of sent batches for the next ones (up
// to the channel's capacity; the rest are left to the garbage collector).
// Its Get is not used by the codec; it allocates.
type batchPool chan []byte

func (p batchPool) Get(n int) *[]byte {
	b := make([]byte, n)
	return &b
}

func (p batchPool) Put(b *[]byte) {
	select {
	case p <- (*b)[:0]:
	default:
	}
}

// captureFrame receives CaptureMessages into a buffer it reuses: Msg is
// valid until the next unmarshal into the frame, and a Packets message's
// records alias the buffer.
type captureFrame struct {
	Msg *agentpb.CaptureMessage
	buf []byte
	// The Packets message is decoded into these, reused.
	packets agentpb.Packets
	wrapper agentpb.CaptureMessage_Packets
	msg     agentpb.CaptureMessage
}

func (f *captureFrame) unmarshal(data mem.BufferSlice) error {
	n := data.Len()
	if cap(f.buf) < n {
		f.buf = make([]byte, n, n+n/4)
	}
	f.buf = f.buf[:n]
	data.CopyTo(f.buf)
	if records, count, ok := parsePacketsMessage(f.buf); ok {
		f.packets = agentpb.Packets{Records: records, Count: count}
		f.wrapper.Packets = &f.packets
		f.msg.Msg = &f.wrapper
		f.Msg = &f.msg
		return nil
	}
	// Anything else, and any other encoding of Packets, the protobuf way
	// (which copies what it keeps).
	m := new(agentpb.CaptureMessage)
	if err := protov2.Unmarshal(f.buf, m); err != nil {
		return err
	}
	f.Msg = m
	return nil
}

// parsePacketsMessage decodes b if it is a CaptureMessage holding exactly
// one packets field with at most one records and one count field, as the
// agent sends them; records aliases b. ok is false for anything else,
// which the protobuf decoder then reads (or refuses).
func parsePacketsMessage(b []byte) (records []byte, count uint32, ok bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != fieldCapturePackets || typ != protowire.BytesType {
		return nil, 0, false
	}
	inner, m := protowire.ConsumeBytes(b[n:])
	if m < 0 || n+m != len(b) {
		return nil, 0, false
	}
	var haveRecords, haveCount bool
	for len(inner) > 0 {
		num, typ, n := protowire.ConsumeTag(inner)
		if n < 0 {
			return nil, 0, false
		}
		inner = inner[n:]
		switch {
		case num == fieldPacketsRecords && typ == protowire.BytesType && !haveRecords:
			v, m := protowire.ConsumeBytes(inner)
			if m < 0 {
				return nil, 0, false
			}
			records, haveRecords, inner = v[:len(v):len(v)], true, inner[m:]
		case num == fieldPacketsCount && typ == protowire.VarintType && !haveCount:
			v, m := protowire.ConsumeVarint(inner)
			if m < 0 {
				return nil, 0, false
			}
			count, haveCount, inner = uint32(v), true, inner[m:]
		default:
			return nil, 0, false
		}
	}
	return records, count, true
}

// framePool is the client's pool for the buffers gRPC reads HTTP/2 frames
// into. Unlike gRPC's default pool it does not clear a buffer before
// handing it out again: the transport reads a whole frame into exactly
// the length it asked for, so no stale byte is ever seen, and clearing
// every received byte was about a tenth of the client's user time in a
// capture (perf, bench/90-agent.sh). Frames are at most 16 KiB (HTTP/2's
// default frame size, which gRPC keeps); larger requests go to the
// default pool.
type framePool struct{ p sync.Pool }

const framePoolSize = 16 << 10

func (fp *framePool) Get(n int) *[]byte {
	if n > framePoolSize {
		return mem.DefaultBufferPool().Get(n)
	}
	if b, ok := fp.p.Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, framePoolSize)
	return &b
}

func (fp *framePool) Put(b *[]byte) {
	if cap(*b) == framePoolSize {
		fp.p.Put(b)
		return
	}
	mem.DefaultBufferPool().Put(b)
}
