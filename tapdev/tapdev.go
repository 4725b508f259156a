package tapdev

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

// Kind says whether a device carries Ethernet frames (TAP) or IP packets
// (TUN). The zero value is invalid on purpose.
type Kind int

const (
	_ Kind = iota
	// TAP devices carry Ethernet frames.
	TAP
	// TUN devices carry IPv4 and IPv6 packets without a link header.
	TUN
)

func (k Kind) String() string {
	switch k {
	case TAP:
		return "tap"
	case TUN:
		return "tun"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// IFNAMSIZ is the kernel's interface name buffer size, terminator included.
const IFNAMSIZ = 16

// MaxTxQueueLen is the largest transmit queue length the kernel takes
// (it holds the length in 32 bits).
const MaxTxQueueLen uint32 = 1<<32 - 1

// MaxQueues is the kernel's limit on the queues of one multiqueue device.
const MaxQueues = 256

// Config describes the device to create.
type Config struct {
	Kind Kind
	// Name of the device; empty lets the kernel pick (tap0, tun1, ...).
	// A "%d" in the name is replaced by the kernel with a free number.
	Name string
	// MTU, if not zero (68 to 65535).
	MTU int
	// MAC of a TAP device, if not nil; must be a unicast 6-byte address.
	MAC net.HardwareAddr
	// TxQueueLen is the device's transmit queue length, the number of
	// frames the kernel holds for a reader before dropping (counted as
	// TX dropped). Zero keeps the kernel default (500 for TUN/TAP).
	TxQueueLen int
	// Addrs are IPv4 or IPv6 addresses with prefix length, added in the
	// target namespace.
	Addrs []netip.Prefix
	// Routes are routed through the device in the target namespace.
	Routes []netip.Prefix
	// Queues is the number of queues (file descriptors); more than one
	// makes a multiqueue device. Zero means one.
	Queues int
	// Persist keeps the device after Close and after the process exits.
	Persist bool
	// Discard makes the device drop every frame the namespace sends
	// through it instead of queueing it for the host to read: a filter
	// that accepts nothing is attached to the device before it goes up.
	// Such frames still pass the namespace's packet taps first
	// (dev_queue_xmit_nit), so an AF_PACKET socket bound to the device
	// sees them without a read of the device per frame; reads of the
	// queues then return nothing (but frames sent by XDP redirect, which
	// skip the filter), and writes work as before. The device's TX
	// dropped counter counts every frame dropped so. A TAP device gets a
	// classic BPF program (TUNATTACHFILTER, which needs no privilege
	// beyond the device); a TUN device, on which the kernel refuses
	// that, an eBPF socket filter (TUNSETFILTEREBPF), whose loading needs
	// CAP_BPF or CAP_SYS_ADMIN in the initial user namespace (unless
	// kernel.unprivileged_bpf_disabled is 0): without it Create fails
	// with ErrNoDiscard before anything is made. Not with Persist: the
	// filter would stay on the device.
	Discard bool
	// BeforeUp, if not nil, is called by Create with the device once it
	// exists and has its MTU, MAC, transmit queue length and discard
	// filter, before it gets its addresses and goes up: nothing has been
	// sent through it yet (attach binds its packet ring there, so that it
	// sees the first frame). It runs on Create's goroutine, in the host
	// namespaces; its error fails Create, which then removes the device.
	BeforeUp func(*Device) error
	// Mirror, if not empty, names an interface of the target whose
	// ingress and egress traffic is mirrored into the device.
	Mirror string
}

// ErrClosed is returned by operations on a closed Device or Queue.
var ErrClosed = errors.New("device closed")

// ErrGone: the device no longer exists in its namespace (deleted there).
var ErrGone = errors.New("device gone")

// ErrExists: a device of the requested name is already in the target.
var ErrExists = errors.New("device exists")

// ErrInvalid: the configuration is invalid; checked before anything is
// created.
var ErrInvalid = errors.New("invalid device configuration")

// ErrNoDiscard: the kernel or the process's privileges do not let the
// device discard what it is sent (Config.Discard); nothing was left in the
// namespace, and the same Create without Discard may succeed.
var ErrNoDiscard = errors.New("device cannot discard")

// ValidName checks an interface name the way the kernel's dev_valid_name
// does, so a bad name is refused before anything is created.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty device name", ErrInvalid)
	case len(name) >= IFNAMSIZ:
		return fmt.Errorf("%w: device name %q is %d bytes, longer than %d (IFNAMSIZ)", ErrInvalid, name, len(name), IFNAMSIZ-1)
	case name == "." || name == "..":
		return fmt.Errorf("%w: device name %q", ErrInvalid, name)
	}
	for _, r := range name {
		if r == '/' || r == ':' || unicode.IsSpace(r) || r < 0x20 || r > 0x7e {
			return fmt.Errorf("%w: device name %q contains %q", ErrInvalid, name, r)
		}
	}
	if strings.Count(name, "%") > 1 || (strings.Contains(name, "%") && !strings.Contains(name, "%d")) {
		return fmt.Errorf("%w: device name %q: only one %%d pattern is allowed", ErrInvalid, name)
	}
	return nil
}

// Validate checks the configuration without touching the system.
func (c *Config) Validate() error {
	if c.Kind != TAP && c.Kind != TUN {
		return fmt.Errorf("%w: kind must be tap or tun", ErrInvalid)
	}
	if c.Name != "" {
		if err := ValidName(c.Name); err != nil {
			return err
		}
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		return fmt.Errorf("%w: MTU %d out of range 68-65535", ErrInvalid, c.MTU)
	}
	if c.MAC != nil {
		if c.Kind != TAP {
			return fmt.Errorf("%w: a MAC address needs a tap device", ErrInvalid)
		}
		if len(c.MAC) != 6 {
			return fmt.Errorf("%w: MAC %s is not 6 bytes", ErrInvalid, c.MAC)
		}
		if c.MAC[0]&1 != 0 {
			return fmt.Errorf("%w: MAC %s is a multicast address", ErrInvalid, c.MAC)
		}
		if string(c.MAC) == "\x00\x00\x00\x00\x00\x00" {
			return fmt.Errorf("%w: MAC %s is all zeros", ErrInvalid, c.MAC)
		}
	}
	if c.TxQueueLen < 0 || int64(c.TxQueueLen) > int64(MaxTxQueueLen) {
		return fmt.Errorf("%w: transmit queue length %d out of range 0-%d", ErrInvalid, c.TxQueueLen, MaxTxQueueLen)
	}
	if c.Queues < 0 || c.Queues > MaxQueues {
		return fmt.Errorf("%w: %d queues, want 1-%d", ErrInvalid, c.Queues, MaxQueues)
	}
	addrs := map[netip.Addr]netip.Prefix{}
	for _, p := range c.Addrs {
		if !p.IsValid() {
			return fmt.Errorf("%w: address %v", ErrInvalid, p)
		}
		// The kernel refuses an address the device already has (for
		// IPv6 whatever the prefix length), after the device exists.
		if q, dup := addrs[p.Addr()]; dup {
			return fmt.Errorf("%w: address %v given twice (%v and %v)", ErrInvalid, p.Addr(), q, p)
		}
		addrs[p.Addr()] = p
	}
	routes := map[netip.Prefix]bool{}
	for _, p := range c.Routes {
		if !p.IsValid() {
			return fmt.Errorf("%w: route %v", ErrInvalid, p)
		}
		if routes[p.Masked()] {
			return fmt.Errorf("%w: route %v given twice", ErrInvalid, p.Masked())
		}
		routes[p.Masked()] = true
	}
	if c.Discard && c.Persist {
		return fmt.Errorf("%w: a persistent device cannot discard what it is sent (the filter would outlive netobs)", ErrInvalid)
	}
	if c.Mirror != "" {
		if err := ValidName(c.Mirror); err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
	}
	return nil
}

// Stats are the device's counters as the kernel reports them in the
// target namespace. TX is what the namespace sent into the device (what
// the host reads), RX what the host wrote into it.
type Stats struct {
	RxPackets, RxBytes, RxDropped uint64
	TxPackets, TxBytes, TxDropped uint64
}

// Removed describes one tc object that Cleanup removed.
type Removed struct {
	Interface string
	// What is "ingress filter pref N", "egress filter pref N" or
	// "clsact qdisc".
	What string
	// Owner is the PID of the netobs that added it, 0 for a qdisc.
	Owner int
}

// String describes r in one line; an interface name that is not a valid
// one (it comes from the namespace) is quoted.
func (r Removed) String() string {
	name := r.Interface
	if ValidName(name) != nil {
		name = strconv.Quote(name)
	}
	if r.Owner == 0 {
		return name + " " + r.What
	}
	return fmt.Sprintf("%s %s (netobs %d, gone)", name, r.What, r.Owner)
}
