package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/netobs/netobs/internal/termsafe"
	"github.com/netobs/netobs/netobs/pktout"
	"github.com/netobs/netobs/nsjoin"
)

// Kind is a kind of routing-netlink object. The zero value is invalid on
// purpose.
type Kind uint8

// The kinds of objects whose changes can be watched.
const (
	_ Kind = iota
	Link
	Addr
	Route
	Neigh
	Rule
	NSID
)

var kindNames = [...]string{Link: "link", Addr: "addr", Route: "route", Neigh: "neigh", Rule: "rule", NSID: "nsid"}

// AllKinds lists every kind, in the order events are dumped.
var AllKinds = []Kind{Link, Addr, Route, Neigh, Rule, NSID}

func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Kinds is a set of kinds.
type Kinds uint8

// KindsAll is the set of every kind.
const KindsAll Kinds = 1<<Link | 1<<Addr | 1<<Route | 1<<Neigh | 1<<Rule | 1<<NSID

// Has reports whether k is in the set.
func (s Kinds) Has(k Kind) bool { return s&(1<<k) != 0 }

// With returns the set with k added.
func (s Kinds) With(k Kind) Kinds { return s | 1<<k }

func (s Kinds) String() string {
	var names []string
	for _, k := range AllKinds {
		if s.Has(k) {
			names = append(names, k.String())
		}
	}
	return strings.Join(names, ",")
}

// ErrUnknownKind: a kind name is not one of link, addr, route, neigh,
// rule, nsid.
var ErrUnknownKind = errors.New("unknown event kind")

// ParseKinds parses a comma-separated list of kind names ("link,addr");
// "all" stands for every kind. An empty string is an error.
func ParseKinds(s string) (Kinds, error) {
	var set Kinds
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(strings.ToLower(name))
		if name == "all" {
			set |= KindsAll
			continue
		}
		found := false
		for _, k := range AllKinds {
			if name == k.String() {
				set, found = set.With(k), true
			}
		}
		if !found {
			return 0, fmt.Errorf("%w %q (want a comma-separated list of link, addr, route, neigh, rule, nsid, or all)", ErrUnknownKind, name)
		}
	}
	return set, nil
}

// Namespace identifies where an event came from.
type Namespace struct {
	Dev   uint64 `json:"dev"`
	Inode uint64 `json:"inode"`
	// Name is the `ip netns` name under /run/netns, if one refers to it.
	Name string `json:"name,omitempty"`
	// PID is a process in the namespace (the lowest seen), if any.
	PID int `json:"pid,omitempty"`
	// Ref is the reference it was watched by, if named by the caller.
	Ref string `json:"ref,omitempty"`
	// Label, if set, is what the caller calls the namespace, such as a
	// container's docker:web; the watcher never sets it.
	Label string `json:"label,omitempty"`
	// Owner, if not nil, names the container the namespace belongs to
	// (set by the caller, as Label); its fields are the namespace's in JSON.
	*pktout.Owner
}

// String labels the namespace as the CLI prints it: net:[INODE], then the
// label, else the name, else the PID.
func (n Namespace) String() string {
	s := fmt.Sprintf("net:[%d]", n.Inode)
	switch {
	case n.Label != "":
		s += " " + termsafe.Escape(n.Label)
	case n.Name != "":
		s += " " + n.Name
	case n.PID != 0:
		s += fmt.Sprintf(" pid %d", n.PID)
	}
	return s
}

// Action says what happened to the object.
type Action string

// The actions of events.
const (
	// Added: a new object (for links: an interface index not seen before).
	Added Action = "add"
	// Changed: an object seen before was reported again with new content.
	Changed Action = "change"
	// Deleted: the object went away.
	Deleted Action = "del"
	// Initial: the object existed when watching started (Options.Initial).
	Initial Action = "initial"
	// Appeared: a namespace started being watched after the start (All).
	Appeared Action = "appeared"
	// Gone: a namespace is no longer reachable; its stream ends.
	Gone Action = "gone"
	// Resync: the receive buffer overflowed and the state was dumped
	// again; Changes lists the differences.
	Resync Action = "resync"
	// Failed: a namespace could not be watched (All), or its socket failed;
	// Text says why. Its stream ends.
	Failed Action = "error"
)

// Event is one change in one namespace. Kind is empty for namespace
// lifecycle events (Appeared, Gone, Failed) and for Resync.
type Event struct {
	Time   time.Time `json:"time"`
	NS     Namespace `json:"ns"`
	Kind   string    `json:"kind,omitempty"`
	Action Action    `json:"action"`
	// Key identifies the object within its namespace and kind ("link 2",
	// "addr 2 10.0.0.1/24"): an add or change for a key replaces what was
	// known, a del removes it.
	Key string `json:"key,omitempty"`
	// Text describes the object in the words of `ip monitor`.
	Text string `json:"text"`
	// Index and Dev name the interface the object belongs to, if any.
	Index int    `json:"ifindex,omitempty"`
	Dev   string `json:"dev,omitempty"`
	// Notes say what changed when it is not obvious: "renamed from eth0",
	// "up", "down", "moved to netnsid 3", "flushed: link down".
	Notes []string `json:"notes,omitempty"`
	// Changes, for Resync, lists what differs from the state last reported.
	Changes []Change `json:"changes,omitempty"`
	// Object is the parsed netlink object (netlink.Link, *netlink.Neigh,
	// ...) where the netlink library has a type for it; nil otherwise.
	Object any `json:"-"`
}

// Change is one difference found by a resync.
type Change struct {
	Kind   string `json:"kind"`
	Action Action `json:"action"` // Added, Changed or Deleted
	Key    string `json:"key"`
	Text   string `json:"text"`
}

// Options configure a Watcher. The zero value watches every kind of the
// namespaces given, without printing the initial state.
type Options struct {
	// Kinds to report; zero means KindsAll.
	Kinds Kinds
	// Initial: report the objects present when a namespace given to New
	// starts being watched, as Initial events, before its changes. A
	// namespace found after the start (All) always has its state reported
	// as Initial events after its Appeared event: what was made in it
	// before the watcher subscribed is not lost.
	Initial bool
	// All: watch every network namespace on the system, including ones
	// that appear later.
	All bool
	// HostRoot is where the host's / is mounted when the caller runs in a
	// container with the host's /proc and /run under it: All scans
	// HostRoot/proc and HostRoot/run/netns, and names and PIDs are the
	// host's. "" or "/" means the caller's own /proc and /run.
	HostRoot string
	// RcvBuf is the receive buffer asked for each socket, in bytes; zero
	// means DefaultRcvBuf. Small values are for tests that want overflow.
	RcvBuf int
	// Rescan is how often /proc is scanned for new namespaces (All) and
	// named namespaces checked for disappearance; zero means one second,
	// otherwise it must be from MinRescan to MaxRescan. With All, a
	// process's namespace that lives less than Rescan may never be seen,
	// and a named one that is gone within about 10ms of its creation
	// (names are watched with inotify, then looked at every 10ms until
	// mounted).
	Rescan time.Duration
}

// The bounds of Options.Rescan: a shorter interval would keep a core busy
// scanning /proc, a longer one would leave gone namespaces reported late.
const (
	MinRescan = 10 * time.Millisecond
	MaxRescan = time.Hour
)

// ErrOptions: an Options field is out of range.
var ErrOptions = errors.New("invalid watcher options")

// DefaultRcvBuf is the receive buffer each socket asks for. It is a limit,
// not an allocation: the kernel charges memory only for what is queued, so
// a large value costs nothing until a burst needs it.
const DefaultRcvBuf = 16 << 20

// Stats counts what a watcher has done.
type Stats struct {
	Events  uint64 // events delivered
	Resyncs uint64 // resyncs done after an overflow
	// Forged counts netlink datagrams dropped because they did not come
	// from the kernel: a process inside a watched namespace (with
	// CAP_NET_ADMIN there) can send messages to the watcher's sockets.
	Forged     uint64
	Namespaces int // namespaces watched now
}

// ErrClosed: the watcher was closed.
var ErrClosed = errors.New("watcher closed")

// Watch streams the events of one namespace until ctx is cancelled, then
// closes the channel; if the namespace goes first (its process exits, its
// name is removed), a Gone event is the last before the channel closes.
// It is what `netobs attach` uses to interleave a namespace's events with
// its frames. Read the channel until it is closed: a slow reader loses
// nothing silently (the kernel queue fills, and an overflow ends in a
// Resync event), and cancelling ctx ends the watch even if nobody reads.
func Watch(ctx context.Context, ns *nsjoin.NS, kinds Kinds) (<-chan Event, error) {
	w, err := New(ctx, []*nsjoin.NS{ns}, Options{Kinds: kinds})
	if err != nil {
		return nil, err
	}
	return w.Events(), nil
}

// WriteText prints an event as 'ip monitor' would, after a timestamp and
// the namespace label.
func WriteText(w io.Writer, ev Event) error {
	prefix := ev.Time.Format("15:04:05.000000") + " " + ev.NS.String() + " "
	var err error
	switch ev.Action {
	case Appeared, Gone, Failed:
		text := ev.Text
		if ev.Action == Failed {
			text = "error: " + text
		}
		_, err = fmt.Fprintf(w, "%s[NS] %s\n", prefix, text)
	case Resync:
		_, err = fmt.Fprintf(w, "%s[RESYNC] %s\n", prefix, ev.Text)
		marks := map[Action]string{Added: "+", Deleted: "-", Changed: "~"}
		for _, c := range ev.Changes {
			if err != nil {
				break
			}
			_, err = fmt.Fprintf(w, "%s[RESYNC] %s [%s] %s\n", prefix, marks[c.Action], strings.ToUpper(c.Kind), c.Text)
		}
	default:
		del := ""
		if ev.Action == Deleted {
			del = "Deleted "
		}
		notes := ""
		if len(ev.Notes) > 0 {
			notes = " (" + strings.Join(ev.Notes, ", ") + ")"
		}
		_, err = fmt.Fprintf(w, "%s[%s] %s%s%s\n", prefix, strings.ToUpper(ev.Kind), del, ev.Text, notes)
	}
	return err
}
