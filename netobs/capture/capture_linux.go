package capture

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netobs/netobs/nsjoin"
	"golang.org/x/sys/unix"
)

// Capture is a set of capture sockets, one per (namespace, interface).
// Make one with Open, read it with Run, release it with Close.
type Capture struct {
	cfg   Config
	rings []*ring
	ifcs  []*Interface

	mu      sync.Mutex // guards running, closed, efd
	running bool
	closed  bool
	efd     int            // wakes the merging reader; -1 once closed
	discard atomic.Bool    // the handler stopped the capture: drop what is left
	readers sync.WaitGroup // goroutines reading the rings
}

// Open creates the capture sockets for every target and interface in cfg.
// The sockets are bound and capturing when Open returns; packets queue in
// their rings until Run reads them. The targets' namespace handles must
// stay open until Close.
func Open(targets []Target, cfg Config) (*Capture, error) {
	return OpenContext(context.Background(), targets, cfg)
}

// OpenContext is Open, interrupted when ctx ends: it then returns ctx's
// cause (wrapped) promptly, even while libpcap compiles a long filter
// expression; that compilation goes on in the background until libpcap
// returns, and its result is dropped.
func OpenContext(ctx context.Context, targets []Target, cfg Config) (*Capture, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, wrap("capture", "", err)
	}
	if len(targets) == 0 {
		return nil, wrap("capture", "", errors.New("no namespace given"))
	}
	comp := &compiler{ctx: ctx, expr: cfg.Filter, snaplen: cfg.Snaplen, outgoing: cfg.Outgoing}
	if cfg.Filter != "" {
		// Check the expression once, so a bad one is reported once and
		// before any namespace is entered; the program is kept for the
		// sockets of this link type.
		link := LinkEthernet
		if cfg.Interfaces[0] == AnyInterface {
			link = LinkLinuxSLL
		}
		if _, err := comp.compile(link); err != nil {
			return nil, wrap("capture", "", err)
		}
	}
	c := &Capture{cfg: cfg, efd: -1}
	if c.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, wrap("capture", "", os.NewSyscallError("eventfd", err))
	}
	for _, t := range targets {
		if t.NS == nil {
			c.Close()
			return nil, wrap("capture", "", errors.New("nil namespace"))
		}
		if ctx.Err() != nil {
			c.Close()
			return nil, wrap("capture", "", context.Cause(ctx))
		}
		label, desc := describe(t)
		for _, dev := range cfg.Interfaces {
			ifc := &Interface{
				ID: len(c.ifcs), Device: dev, Label: label, Name: dev + "@" + label,
				Namespace: t.NS.String(), Description: desc, Owner: t.Owner, Snaplen: cfg.Snaplen, Filter: cfg.Filter,
			}
			r, err := openRing(t, dev, cfg, comp, ifc)
			if err != nil {
				c.Close()
				return nil, wrap("capture", ifc.Name, err)
			}
			c.rings = append(c.rings, r)
			c.ifcs = append(c.ifcs, ifc)
		}
	}
	return c, nil
}

// describe names a namespace for interface names and descriptions.
func describe(t Target) (label, desc string) {
	ns := t.NS
	id := ns.ID()
	name := netnsName(ns)
	label = t.Label
	if label == "" {
		label = name
	}
	if label == "" {
		label = strconv.FormatUint(id.Inode, 10)
	}
	var parts []string
	if t.Owner != nil {
		parts = append(parts, t.Owner.Describe())
	}
	parts = append(parts, "network namespace "+ns.String())
	if name != "" {
		parts = append(parts, "ip netns "+name)
	}
	if ns.PID() != 0 {
		parts = append(parts, "pid "+strconv.Itoa(ns.PID()))
	}
	parts = append(parts, "ref "+ns.Ref())
	return label, strings.Join(parts, ", ")
}

// netnsName finds the ip-netns name of a namespace, if it has one.
func netnsName(ns *nsjoin.NS) string {
	names := nsjoin.NamesOf(ns.ID())
	// The name the user gave, if it is one of them.
	for _, n := range names {
		if ns.Path() == filepath.Join(nsjoin.NetnsRunDir, n) {
			return n
		}
	}
	if len(names) > 0 {
		return names[0]
	}
	return ""
}

// Interfaces lists the capture sockets, in ID order.
func (c *Capture) Interfaces() []*Interface { return c.ifcs }

// Stats returns each interface's counters, in ID order. It may be called
// while Run runs; after Run returns the counts are final.
func (c *Capture) Stats() []Stats {
	out := make([]Stats, len(c.rings))
	for i, r := range c.rings {
		out[i] = Stats{Received: r.received.Load(), Dropped: r.dropped.Load(), Captured: r.captured.Load()}
	}
	return out
}

// Run reads every socket and hands packets to h in timestamp order until
// ctx is cancelled, h returns ErrStop, Close is called, or every part has
// ended. On cancellation the packets already handed over by the kernel are
// still delivered, then h is flushed. Run may be called once.
func (c *Capture) Run(ctx context.Context, h Handler) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return wrap("capture", "", ErrClosed)
	}
	if c.running {
		c.mu.Unlock()
		return wrap("capture", "", errors.New("Run called twice"))
	}
	c.running = true
	c.readers.Add(1) // this goroutine, or the readers it starts
	c.mu.Unlock()
	defer c.readers.Done()

	stopWatch := context.AfterFunc(ctx, c.wakeAll)
	defer stopWatch()
	var err error
	if len(c.rings) == 1 {
		err = c.runOne(h)
	} else {
		err = c.runMerged(h)
	}
	if errors.Is(err, ErrStop) {
		err = nil
	}
	return wrap("capture", "", err)
}

func (c *Capture) wakeAll() {
	for _, r := range c.rings {
		r.wake()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.efd >= 0 {
		var one = [8]byte{1}
		unix.Write(c.efd, one[:])
	}
}

// direct hands packets straight from the ring to the handler: with one
// socket there is nothing to merge and nothing to copy.
type direct struct{ h Handler }

func (d direct) packet(r *ring, p *Packet) error {
	err := d.h.Packet(p)
	if err == nil || err == ErrStop {
		r.delivered++ // published by blockDone: one atomic add per block
	}
	return err
}

func (d direct) blockDone(r *ring) {
	r.captured.Add(r.delivered)
	r.delivered = 0
}

func (d direct) idle(*ring) error { return d.h.Flush() }

func (c *Capture) runOne(h Handler) error {
	r := c.rings[0]
	// The reader parks in Go's poller whenever it catches up with the
	// kernel. Run's caller may be locked to its thread (netobs's main
	// goroutine is), and every park and wake-up of a locked goroutine
	// hands its thread over twice; a goroutine of its own has no thread
	// to hand over.
	err := r.usePoller()
	if err == nil {
		done := make(chan error, 1)
		go func() { done <- r.read(direct{h}) }()
		err = <-done
	}
	if ferr := h.Flush(); err == nil || errors.Is(err, ErrStop) {
		if ferr != nil {
			err = ferr
		}
	}
	if isPartEnd(err) {
		r.close() // the reader has returned; let the namespace go
		h.Ended(r.ifc, err)
		return nil
	}
	return err
}

func isPartEnd(err error) bool {
	return errors.Is(err, ErrNamespaceGone) || errors.Is(err, ErrInterfaceGone)
}

// Close stops Run, waits for every reader to return, then unmaps the rings
// and closes the sockets. It is idempotent.
func (c *Capture) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.wakeAll()
	c.readers.Wait()
	for _, r := range c.rings {
		r.close()
	}
	c.mu.Lock()
	unix.Close(c.efd)
	c.efd = -1
	c.mu.Unlock()
	return nil
}

// hold is how long the merger waits for a quiet socket before writing a
// busier one's packets: a packet can surface up to one block timeout after
// its timestamp, plus scheduling.
func (c *Capture) hold() time.Duration { return 2*c.cfg.BlockTimeout + 50*time.Millisecond }
