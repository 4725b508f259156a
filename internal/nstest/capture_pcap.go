package nstest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// PcapPacket is one packet read by ReadPcap.
type PcapPacket struct {
	Interface int    // pcapng interface ID; 0 for pcap
	Time      int64  // nanoseconds since the epoch
	Length    int    // on the wire
	Data      []byte // as captured
}

// PcapInterface is one pcapng interface description block, with the
// statistics block that followed it, if any.
type PcapInterface struct {
	LinkType    int
	Name        string
	Description string
	Filter      string
	HasStats    bool
	IfRecv      uint64
	IfDrop      uint64
	OSDrop      uint64
	UsrDeliv    uint64
}

// ReadPcap reads a little-endian pcap (micro- or nanosecond) or pcapng
// file, as the capture tests need to compare packets byte for byte with
// what tcpdump wrote. It fails on a truncated file.
func ReadPcap(path string) ([]PcapPacket, []PcapInterface, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if len(b) < 24 {
		return nil, nil, fmt.Errorf("%s: %d bytes, too short for a capture file", path, len(b))
	}
	le := binary.LittleEndian
	switch le.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		nano := le.Uint32(b) == 0xa1b23c4d
		ifc := []PcapInterface{{LinkType: int(le.Uint32(b[20:]))}}
		var pkts []PcapPacket
		for off := 24; off < len(b); {
			if off+16 > len(b) {
				return pkts, ifc, fmt.Errorf("%s: truncated record header at %d", path, off)
			}
			sec, frac, incl, orig := le.Uint32(b[off:]), le.Uint32(b[off+4:]), int(le.Uint32(b[off+8:])), int(le.Uint32(b[off+12:]))
			if off+16+incl > len(b) {
				return pkts, ifc, fmt.Errorf("%s: truncated record at %d", path, off)
			}
			t := int64(sec)*1e9 + int64(frac)
			if !nano {
				t = int64(sec)*1e9 + int64(frac)*1e3
			}
			pkts = append(pkts, PcapPacket{Time: t, Length: orig, Data: b[off+16 : off+16+incl]})
			off += 16 + incl
		}
		return pkts, ifc, nil
	case 0x0A0D0D0A:
	default:
		return nil, nil, fmt.Errorf("%s: not a little-endian pcap or pcapng file", path)
	}
	var pkts []PcapPacket
	var ifcs []PcapInterface
	for off := 0; off < len(b); {
		if off+12 > len(b) {
			return pkts, ifcs, fmt.Errorf("%s: truncated block at %d", path, off)
		}
		typ, n := le.Uint32(b[off:]), int(le.Uint32(b[off+4:]))
		if n < 12 || n%4 != 0 || off+n > len(b) || int(le.Uint32(b[off+n-4:])) != n {
			return pkts, ifcs, fmt.Errorf("%s: bad or truncated block at %d", path, off)
		}
		body := b[off+8 : off+n-4]
		switch typ {
		case 1: // IDB
			ifc := PcapInterface{LinkType: int(le.Uint16(body))}
			opts(body[8:], func(code int, v []byte) {
				switch code {
				case 2:
					ifc.Name = string(v)
				case 3:
					ifc.Description = string(v)
				case 11:
					if len(v) > 0 {
						ifc.Filter = string(v[1:])
					}
				}
			})
			ifcs = append(ifcs, ifc)
		case 6: // EPB, assuming if_tsresol 9 as netobs writes
			id, caplen := int(le.Uint32(body)), int(le.Uint32(body[12:]))
			if id >= len(ifcs) || 20+caplen > len(body) {
				return pkts, ifcs, fmt.Errorf("%s: bad packet block at %d", path, off)
			}
			t := int64(uint64(le.Uint32(body[4:]))<<32 | uint64(le.Uint32(body[8:])))
			pkts = append(pkts, PcapPacket{Interface: id, Time: t, Length: int(le.Uint32(body[16:])), Data: body[20 : 20+caplen]})
		case 5: // ISB
			id := int(le.Uint32(body))
			if id >= len(ifcs) {
				return pkts, ifcs, errors.New("statistics for an unknown interface")
			}
			ifc := &ifcs[id]
			ifc.HasStats = true
			opts(body[12:], func(code int, v []byte) {
				if len(v) != 8 {
					return
				}
				switch code {
				case 4:
					ifc.IfRecv = le.Uint64(v)
				case 5:
					ifc.IfDrop = le.Uint64(v)
				case 7:
					ifc.OSDrop = le.Uint64(v)
				case 8:
					ifc.UsrDeliv = le.Uint64(v)
				}
			})
		}
		off += n
	}
	return pkts, ifcs, nil
}

func opts(b []byte, f func(code int, v []byte)) {
	le := binary.LittleEndian
	for len(b) >= 4 {
		code, n := int(le.Uint16(b)), int(le.Uint16(b[2:]))
		if code == 0 || 4+n > len(b) {
			return
		}
		f(code, b[4:4+n])
		b = b[4+(n+3)&^3:]
	}
}
