package capture

import (
	"errors"
	"fmt"
	"time"

	"github.com/netobs/netobs/netobs/pktout"
	"github.com/netobs/netobs/nsjoin"
)

// LinkType, Interface, Packet and Stats are pktout's: capture hands its
// packets to pktout's writers and summaries.
type (
	LinkType  = pktout.LinkType
	Interface = pktout.Interface
	Packet    = pktout.Packet
	Stats     = pktout.Stats
)

const (
	LinkEthernet = pktout.LinkEthernet
	LinkRaw      = pktout.LinkRaw
	LinkLinuxSLL = pktout.LinkLinuxSLL
)

const (
	// DefaultSnaplen keeps whole packets, GRO/GSO super-frames included
	// (tcpdump's default, libpcap's MAXIMUM_SNAPLEN).
	DefaultSnaplen = 262144
	// MaxSnaplen is the largest snapshot length accepted.
	MaxSnaplen = 262144
	// DefaultBufferSize is the size of each socket's ring.
	DefaultBufferSize = 4 << 20
	// MinBufferSize is the smallest ring accepted.
	MinBufferSize = 64 << 10
	// DefaultBlockTimeout is how long the kernel fills a ring block before
	// handing it over anyway; it bounds how late a packet is written.
	DefaultBlockTimeout = 100 * time.Millisecond
	// AnyInterface captures on every interface of a namespace, those that
	// appear later included, with the Linux cooked link type.
	AnyInterface = "any"
)

// Config says what to capture in each namespace. The zero value captures
// whole packets on every interface with the default ring.
type Config struct {
	// Interfaces to capture on in every namespace; empty or "any" means
	// all interfaces (one socket, Linux cooked headers).
	Interfaces []string
	// Snaplen is the most bytes kept of each packet; 0 means DefaultSnaplen.
	Snaplen int
	// BufferSize is the ring size per socket in bytes; 0 means DefaultBufferSize.
	BufferSize int
	// Filter is a tcpdump filter expression; empty keeps every packet.
	Filter string
	// Immediate hands packets over as soon as they arrive (1 ms ring block
	// timeout) instead of in blocks.
	Immediate bool
	// BlockTimeout overrides DefaultBlockTimeout when Immediate is false.
	BlockTimeout time.Duration
	// Outgoing keeps only the packets the interfaces transmit (packet
	// type PACKET_OUTGOING), checked in the kernel before Filter.
	Outgoing bool
}

// Target is one namespace to capture in.
type Target struct {
	NS *nsjoin.NS
	// Label names the namespace in interface names (eth0@LABEL); empty
	// means its ip-netns name if it has one, else its inode number.
	Label string
	// Owner, if not nil, names the container the namespace belongs to;
	// it goes into the interface description and JSON summaries.
	Owner *Owner
}

// Owner names the container (and pod) a namespace belongs to.
type Owner = pktout.Owner

// Handler receives what Run captures, from one goroutine at a time, in
// timestamp order.
type Handler interface {
	// Packet handles one packet. Returning ErrStop ends Run without error
	// after this packet, which counts as captured; any other error ends
	// Run with that error.
	Packet(p *Packet) error
	// Flush is called whenever Run has handed over every packet it holds,
	// at least once per block timeout while packets flow, and at the end.
	Flush() error
	// Ended reports that one interface's part of the capture ended early
	// because its namespace or interface went away; the others go on.
	// Its socket is closed by then. After ErrNamespaceGone the caller may
	// close the namespace handle, so the namespace can be freed.
	Ended(ifc *Interface, reason error)
}

var (
	// ErrStop, returned by Handler.Packet, ends Run cleanly.
	ErrStop = errors.New("stop capture")
	// ErrClosed: the capture was closed.
	ErrClosed = errors.New("capture closed")
	// ErrNamespaceGone: a part ended because its namespace went away.
	ErrNamespaceGone = errors.New("namespace went away")
	// ErrInterfaceGone: a part ended because its interface went away.
	ErrInterfaceGone = errors.New("interface went away")
	// ErrFilter: the filter expression is invalid.
	ErrFilter = errors.New("invalid filter")
)

// Error is what the public calls return: the operation, the interface or
// namespace it was about, and the cause.
type Error struct {
	Op    string // "open", "capture", ...
	Where string // "eth0@ns1", "ns1", or empty
	Err   error
}

func (e *Error) Error() string {
	if e.Where == "" {
		return e.Op + ": " + e.Err.Error()
	}
	return e.Op + " " + e.Where + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func wrap(op, where string, err error) error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	return &Error{Op: op, Where: where, Err: err}
}

// normalize fills in Config defaults and checks ranges.
func (c Config) normalize() (Config, error) {
	if c.Snaplen == 0 {
		c.Snaplen = DefaultSnaplen
	}
	if c.Snaplen < 1 || c.Snaplen > MaxSnaplen {
		return c, fmt.Errorf("snaplen %d out of range 1..%d", c.Snaplen, MaxSnaplen)
	}
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
	if c.BufferSize < MinBufferSize || c.BufferSize > 1<<30 {
		return c, fmt.Errorf("buffer size %d out of range %d..%d bytes", c.BufferSize, MinBufferSize, 1<<30)
	}
	if c.BlockTimeout == 0 {
		c.BlockTimeout = DefaultBlockTimeout
	}
	if c.Immediate {
		c.BlockTimeout = time.Millisecond
	}
	if c.BlockTimeout < time.Millisecond || c.BlockTimeout > time.Minute {
		return c, fmt.Errorf("block timeout %v out of range 1ms..1m", c.BlockTimeout)
	}
	if len(c.Interfaces) == 0 {
		c.Interfaces = []string{AnyInterface}
	}
	seen := map[string]bool{}
	for _, name := range c.Interfaces {
		if name == "" || len(name) >= 16 {
			return c, fmt.Errorf("invalid interface name %q", name)
		}
		if seen[name] {
			return c, fmt.Errorf("interface %s given twice", name)
		}
		seen[name] = true
	}
	if seen[AnyInterface] && len(c.Interfaces) > 1 {
		return c, fmt.Errorf("interface any already includes %v", c.Interfaces)
	}
	return c, nil
}
