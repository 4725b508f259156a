package capture

import (
	"context"
	"fmt"
)

// FilterError is the error for a filter expression that libpcap refuses,
// or that the kernel cannot run on this kind of socket. errors.Is(err,
// ErrFilter) is true for it: the expression is the caller's mistake.
type FilterError struct {
	Expr string // the expression as given
	Msg  string // what is wrong with it
}

func (e *FilterError) Error() string { return fmt.Sprintf("%s %q: %s", ErrFilter, e.Expr, e.Msg) }

// Is makes errors.Is(err, ErrFilter) true.
func (e *FilterError) Is(target error) bool { return target == ErrFilter }

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
	bpfW         = 0x00
	bpfJMP       = 0x05
	bpfJEQ       = 0x10

	packetOutgoing = 4 // PACKET_OUTGOING

	skfAdOff      = 0xfffff000 // SKF_AD_OFF (-0x1000) as an unsigned offset
	skfAdProtocol = 0
	skfAdPkttype  = 4

	sllHeaderLen = 16
)

// dlt returns libpcap's DLT_ value for a link type, which pcap_open_dead
// wants (it differs from the LINKTYPE_ value for raw IP).
func dlt(l LinkType) int {
	switch l {
	case LinkRaw:
		return 12 // DLT_RAW on Linux
	}
	return int(l)
}

// compiler compiles one Capture's filter expression, once per link type,
// in a way its context can interrupt.
type compiler struct {
	ctx      context.Context
	expr     string
	snaplen  int
	outgoing bool                // prefix the program with a check of the packet type
	progs    map[LinkType][]insn // libpcap's output, before fixCooked
}

// compile returns the program to attach to a socket of link type link.
func (c *compiler) compile(link LinkType) ([]insn, error) {
	prog, ok := c.progs[link]
	if !ok {
		var err error
		if prog, err = compileContext(c.ctx, c.expr, link, c.snaplen); err != nil {
			return nil, err
		}
		if c.progs == nil {
			c.progs = map[LinkType][]insn{}
		}
		c.progs[link] = prog
	}
	prog = append([]insn(nil), prog...)
	if link == LinkLinuxSLL {
		// The kernel runs a cooked socket's filter on the packet after
		// the link header, with no cooked header in front, so loads are
		// moved back by the header and the header's fields are read
		// from the kernel's ancillary data, as libpcap does.
		if err := fixCooked(c.expr, prog, c.snaplen); err != nil {
			return nil, err
		}
	}
	if c.outgoing {
		prog = append(outgoingOnly(), prog...)
	}
	return prog, nil
}

// outgoingOnly is the prefix that drops every packet but those the
// interface transmits: its jumps are relative, so the program after it
// runs unchanged.
func outgoingOnly() []insn {
	return []insn{
		{Code: bpfLD | bpfW | bpfABS, K: skfAdOff + skfAdPkttype},
		{Code: bpfJMP | bpfJEQ | bpfK, Jt: 1, Jf: 0, K: packetOutgoing},
		{Code: bpfRET | bpfK, K: 0},
	}
}

// compileContext runs libpcap's compiler, which cannot be interrupted and
// takes tens of seconds for an expression of hundreds of terms, on its own
// goroutine. When ctx ends first it returns ctx's cause and leaves that
// goroutine to finish in the background, its result dropped.
func compileContext(ctx context.Context, expr string, link LinkType, snaplen int) ([]insn, error) {
	if expr == "" {
		return []insn{{Code: bpfRET | bpfK, K: uint32(snaplen)}}, nil // what libpcap makes of ""
	}
	if ctx.Done() == nil {
		return compileExpr(expr, link, snaplen)
	}
	type result struct {
		prog []insn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		prog, err := compileExpr(expr, link, snaplen)
		done <- result{prog, err}
	}()
	select {
	case r := <-done:
		return r.prog, r.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func fixCooked(expr string, prog []insn, snaplen int) error {
	for i := range prog {
		p := &prog[i]
		switch p.Code & bpfClassMask {
		case bpfLD, bpfLDX:
			switch p.Code & bpfModeMask {
			case bpfABS, bpfIND, bpfMSH:
				switch {
				case p.K >= skfAdOff:
					// Already the kernel's ancillary data (a live
					// handle's VLAN checks): nothing to move.
				case p.K >= sllHeaderLen:
					p.K -= sllHeaderLen
				case p.K == 0:
					p.K = skfAdOff + skfAdPkttype
				case p.K == 14:
					p.K = skfAdOff + skfAdProtocol
				default:
					return &FilterError{Expr: expr, Msg: fmt.Sprintf("the expression reads cooked-header bytes %d.. that the kernel cannot filter on for -i any; name an interface instead", p.K)}
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
