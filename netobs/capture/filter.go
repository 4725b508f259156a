package capture

import "fmt"

// insn is one classic BPF instruction, laid out as the kernel's sock_filter.
type insn struct {
	Code uint16
	Jt   uint8
	Jf   uint8
	K    uint32
}

// Classic BPF opcode parts and the kernel's ancillary-data offsets.
const (
	bpfClassMask = 0x07
	bpfLD        = 0x00
	bpfLDX       = 0x01
	bpfRET       = 0x06
	bpfModeMask  = 0xe0
	bpfABS       = 0x20
	bpfIND       = 0x40
	bpfMSH       = 0xa0
	bpfRvalMask  = 0x18
	bpfK         = 0x00

	skfAdOff      = 0xfffff000 // SKF_AD_OFF (-0x1000) as an unsigned offset
	skfAdProtocol = 0
	skfAdPkttype  = 4

	sllHeaderLen = 16
)

// dlt returns libpcap's DLT_ value for a link type, which pcap_open_dead
// wants (it differs from the LINKTYPE_ value for raw IP).
func (l LinkType) dlt() int {
	switch l {
	case LinkRaw:
		return 12 // DLT_RAW on Linux
	}
	return int(l)
}

// compileFilter compiles a tcpdump expression into the program to attach
// to a socket of link type link, returning snaplen bytes of each packet.
func compileFilter(expr string, link LinkType, snaplen int) ([]insn, error) {
	prog, err := compileExpr(expr, link, snaplen)
	if err != nil {
		return nil, err
	}
	if link == LinkLinuxSLL {
		// The kernel runs a cooked socket's filter on the packet after
		// the link header, with no cooked header in front, so loads are
		// moved back by the header and the header's fields are read
		// from the kernel's ancillary data, as libpcap does.
		if err := fixCooked(prog, snaplen); err != nil {
			return nil, err
		}
	}
	return prog, nil
}

func fixCooked(prog []insn, snaplen int) error {
	for i := range prog {
		p := &prog[i]
		switch p.Code & bpfClassMask {
		case bpfLD, bpfLDX:
			switch p.Code & bpfModeMask {
			case bpfABS, bpfIND, bpfMSH:
				switch {
				case p.K >= sllHeaderLen:
					p.K -= sllHeaderLen
				case p.K == 0:
					p.K = skfAdOff + skfAdPkttype
				case p.K == 14:
					p.K = skfAdOff + skfAdProtocol
				default:
					return fmt.Errorf("%w: the expression reads cooked-header bytes %d.. that the kernel cannot filter on for -i any; name an interface instead", ErrFilter, p.K)
				}
			}
		case bpfRET:
			// The kernel's snapshot excludes the cooked header the
			// reader adds; it is cut to snaplen in user space.
			if p.Code&bpfRvalMask == bpfK && p.K != 0 {
				k := snaplen - sllHeaderLen
				if k < 1 {
					k = 1
				}
				p.K = uint32(k)
			}
		}
	}
	return nil
}
