package nstest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	internal "github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/nsjoin"
)

// InCI reports whether the tests run in CI (the environment has CI=true),
// where a missing privilege or tool fails a test instead of skipping it.
func InCI() bool { return internal.InCI() }

// Unavailable stops the test because something it needs is missing: it
// fails the test under CI=true and skips it otherwise. msg should name the
// fix ("needs tshark on PATH: apt-get install tshark").
func Unavailable(tb testing.TB, msg string) {
	tb.Helper()
	internal.Unavailable(tb, msg)
}

// RequireRoot stops the test (see Unavailable) unless it runs as root,
// which making namespaces and links needs.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Unavailable(tb, "needs root for network namespaces: run the tests as root (sudo go test)")
	}
}

// RequireTools stops the test (see Unavailable) unless every program named
// is on PATH. The helpers of this package need none; it is for tests that
// cross-check with tcpdump, tshark, ss or the like.
func RequireTools(tb testing.TB, tools ...string) {
	tb.Helper()
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			Unavailable(tb, fmt.Sprintf("needs %s on PATH: install it, or add its directory to PATH", t))
		}
	}
}

// UniqueName returns a name unique to this test run (process): a prefix
// made from the PID, kind, and a counter. With kind at most 3 bytes the
// first 99,999 names fit an interface name (15 bytes, IFNAMSIZ). netobs's
// own internal test helpers draw from the same counter.
func UniqueName(kind string) string { return internal.UniqueName(kind) }

// Prefix is the prefix of every name UniqueName returns in this run.
func Prefix() string { return internal.Prefix() }

// Link is one interface a helper made, as it is in its namespace.
type Link struct {
	NS    *nsjoin.NS // the namespace it is in
	Name  string
	Index int
	MAC   net.HardwareAddr
	Addrs []netip.Prefix // the addresses the helper added
}

// Addr returns the link's first address without its prefix length, the
// usual thing to listen on or dial; the zero Addr if it has none.
func (l Link) Addr() netip.Addr {
	if len(l.Addrs) == 0 {
		return netip.Addr{}
	}
	return l.Addrs[0].Addr()
}

// End describes one end of a veth pair, or a namespace joined to a bridge.
type End struct {
	// NS is the namespace the interface goes into; HostNS(tb) for the
	// test process's own.
	NS *nsjoin.NS
	// Name of the interface; empty means UniqueName("v").
	Name string
	// Addrs are addresses with prefix length ("10.0.0.1/24",
	// "fd00::1/64"). IPv6 addresses skip duplicate address detection, so
	// they can be bound at once.
	Addrs []string
	// MTU, if not zero.
	MTU int
}

// Packet is one packet a Capture recorded. Its bytes are a copy.
type Packet struct {
	// Interface is DEVICE@LABEL, as package capture names it.
	Interface string
	Time      time.Time
	// Length on the wire; len(Data) is what was captured.
	Length int
	// Data is the packet from its link-layer header on (Ethernet for a
	// veth, a Linux cooked header for "any").
	Data     []byte
	Outgoing bool
	// Proto, Src, Dst, SrcPort, DstPort and Summary decode the headers
	// (tcpdump -n style), as package capture summarizes them.
	Proto            string
	Src, Dst         string
	SrcPort, DstPort int
	Summary          string
}

// DefaultWait bounds how long Recorder.WaitFor waits before failing the
// test. It is a guard against a test that would otherwise hang, not a
// measure of speed.
const DefaultWait = 20 * time.Second

// Recorder keeps what a Capture or Events saw, in arrival order, from the
// moment the helper returned until the test ends or Stop is called. It is
// safe for concurrent use.
type Recorder[T any] struct {
	mu      sync.Mutex
	items   []T
	changed chan struct{} // closed and replaced on every append and at the end
	ended   bool
	err     error // why recording ended on its own, if it did

	stopOnce sync.Once
	stop     func() // ends recording and waits for it; set by the helper
}

func newRecorder[T any]() *Recorder[T] {
	return &Recorder[T]{changed: make(chan struct{})}
}

func (r *Recorder[T]) add(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, v)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *Recorder[T]) end(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	r.ended, r.err = true, err
	close(r.changed)
	r.changed = make(chan struct{})
}

// All returns a copy of everything recorded so far.
func (r *Recorder[T]) All() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.items...)
}

// Stop ends recording, waits until it has ended and returns everything
// recorded. It is idempotent; the test's cleanup calls it too.
func (r *Recorder[T]) Stop() []T {
	r.stopOnce.Do(func() {
		if r.stop != nil {
			r.stop()
		}
	})
	return r.All()
}

// Err returns why recording ended on its own (the capture or watcher
// failed), or nil.
func (r *Recorder[T]) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// WaitFor returns the first item recorded, from the start, for which
// match is true, waiting for it if need be. It fails the test, naming
// what (a description such as "the SYN to 10.1.0.2:80"), if recording
// ends or DefaultWait passes first.
func (r *Recorder[T]) WaitFor(tb testing.TB, what string, match func(T) bool) T {
	tb.Helper()
	timer := time.NewTimer(DefaultWait)
	defer timer.Stop()
	seen := 0
	for {
		r.mu.Lock()
		items, changed, ended, err := r.items[seen:], r.changed, r.ended, r.err
		r.mu.Unlock()
		for _, v := range items {
			if match(v) {
				return v
			}
		}
		seen += len(items)
		if ended {
			tb.Fatalf("waiting for %s: recording ended after %d items (%v)", what, seen, err)
		}
		select {
		case <-changed:
		case <-timer.C:
			tb.Fatalf("waiting for %s: not seen in %v among %d items", what, DefaultWait, seen)
		}
	}
}
