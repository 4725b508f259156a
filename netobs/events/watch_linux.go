package events

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netobs/netobs/internal/nlwire"
	"github.com/netobs/netobs/nsjoin"
	"golang.org/x/sys/unix"
)

// bufSize is the one receive buffer shared by every socket: large enough
// for the biggest message a dump sends (the kernel sizes dump messages to
// the reader's buffer, up to 32 KiB), small enough not to matter.
const bufSize = 64 << 10

type nsKey struct{ dev, ino uint64 }

type linkInfo struct {
	name  string
	flags uint32
}

// nsw is one watched namespace. Only the poller goroutine touches it.
//
// A discovered namespace costs one file descriptor, its subscribed
// socket: the socket holds the namespace alive, and a dump gets the
// namespace back from it (socketNS) for the moment it needs it. So 10,000
// namespaces fit under an open-files limit of 20,000. A namespace named by
// the caller also keeps a handle (and, for a PID reference, its pidfd):
// they are few, and Gone needs the reference they were named by.
type nsw struct {
	ns    *nsjoin.NS // explicit only: the watcher's own handle, for Do and Gone; nil when discovered
	key   nsKey
	info  Namespace
	fd    int // the subscribed socket
	state map[string]obj
	links map[int32]linkInfo

	explicit bool // named by the caller, not discovered
	announce bool // found after the start: say so with an Appeared event
	pidfd    int  // for a PID reference: n.ns's pidfd, polled to notice the exit at once
	overflow bool // ENOBUFS seen: resync before reading on
	refresh  bool // a link went down or away: routes and neighbours may have gone silently
}

func (n *nsw) name(idx int32) string { return n.links[idx].name }

// Watcher streams the events of a set of namespaces. Create it with New;
// read Events until it is closed; Close stops it.
type Watcher struct {
	opts   Options
	kinds  Kinds
	out    chan Event
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when the poller has released everything
	ready  chan struct{} // closed once the namespaces given to New are dumped
	once   sync.Once
	ready1 sync.Once
	stop   func() bool // unregisters the context callback

	mu  sync.Mutex
	err error // why the poller ended on its own, guarded by mu

	events, resyncs, overflows atomic.Uint64
	forged                     atomic.Uint64 // datagrams not from the kernel, dropped
	watching                   atomic.Int64

	// wakefd is the eventfd Close writes to; guarded by wakeMu (the
	// poller only reads it, and release sets it to -1 under the lock).
	wakeMu sync.Mutex
	wakefd int

	// Owned by the poller goroutine after New returns.
	epfd    int
	byFD    map[int]*nsw
	byKey   map[nsKey]*nsw
	buf     []byte
	self    nsKey  // the process's own network namespace
	nsfsDev uint64 // st_dev of nsfs files, to tell a mounted name from an empty file
	disc    *discovery
	fresh   []*nsw // added but not dumped yet
}

// New starts watching the namespaces in nss and, with opts.All, every
// network namespace on the system. It does not take ownership of the
// handles: it opens its own. Errors about the namespaces given (no
// privilege to enter one) are returned here; later failures arrive as
// events. Cancelling ctx is the same as calling Close.
func New(ctx context.Context, nss []*nsjoin.NS, opts Options) (*Watcher, error) {
	w, err := newWatcher(ctx, nss, opts)
	if err != nil {
		return nil, fmt.Errorf("watch events: %w", err)
	}
	return w, nil
}

func newWatcher(ctx context.Context, nss []*nsjoin.NS, opts Options) (*Watcher, error) {
	if len(nss) == 0 && !opts.All {
		return nil, errors.New("no namespace to watch")
	}
	if opts.Kinds == 0 {
		opts.Kinds = KindsAll
	}
	if opts.RcvBuf <= 0 {
		opts.RcvBuf = DefaultRcvBuf
	}
	switch {
	case opts.Rescan == 0:
		opts.Rescan = time.Second
	case opts.Rescan < MinRescan || opts.Rescan > MaxRescan:
		return nil, fmt.Errorf("%w: rescan interval %v out of range %v to %v", ErrOptions, opts.Rescan, MinRescan, MaxRescan)
	}
	w := &Watcher{
		opts: opts, kinds: opts.Kinds,
		out:    make(chan Event, 64),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
		ready:  make(chan struct{}),
		epfd:   -1, wakefd: -1,
		byFD:  map[int]*nsw{},
		byKey: map[nsKey]*nsw{},
		buf:   make([]byte, bufSize),
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return nil, os.NewSyscallError("stat /proc/self/ns/net", err)
	}
	w.self, w.nsfsDev = nsKey{st.Dev, st.Ino}, st.Dev
	ok := false
	defer func() {
		if !ok {
			if w.stop != nil {
				w.stop()
			}
			w.release()
			w.markReady()
			close(w.out)
			close(w.exited) // a Close the context started returns
		}
	}()
	var err error
	if w.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if w.wakefd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, os.NewSyscallError("eventfd", err)
	}
	if err := w.poll(w.wakefd); err != nil {
		return nil, err
	}
	// Registered before the namespaces are opened, so that a cancel
	// during a long start (thousands of namespaces with All) cuts it
	// short: the loops below stop adding, and the poller ends at once.
	w.stop = context.AfterFunc(ctx, func() { w.Close() })
	var labels map[nsKey]*sighting
	if len(nss) > 0 {
		// One look at /run/netns and /proc gives the names and PIDs the
		// namespaces are labelled with.
		labels = scanSystem(opts.HostRoot)
	}
	for _, ns := range nss {
		if w.closing() {
			break
		}
		if err := w.addExplicit(ns, labels); err != nil {
			return nil, err
		}
	}
	if opts.All && !w.closing() {
		d, err := w.startDiscovery()
		if err != nil {
			return nil, err
		}
		w.disc = d
	}
	ok = true
	go w.run()
	return w, nil
}

// Ready is closed once the state of every namespace given to New has been
// read (and, with Options.Initial, sent as Initial events, which needs a
// reader of Events), or when the watcher stops first. Events are subscribed
// to before New returns; Ready adds that the initial state is in hand, so
// every later change arrives as a change.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

func (w *Watcher) markReady() { w.ready1.Do(func() { close(w.ready) }) }

// Events returns the channel of events. It is closed when the watcher
// stops: after Close, when ctx is cancelled, when every namespace named
// explicitly has gone (without All), or on a failure that Err reports.
func (w *Watcher) Events() <-chan Event { return w.out }

// Close stops the watcher, closes its sockets and the Events channel, and
// returns once its goroutine has ended. Events not yet read are dropped.
// Close is idempotent and may be called from any goroutine.
func (w *Watcher) Close() error {
	w.once.Do(func() {
		close(w.done)
		w.wake()
	})
	<-w.exited
	return nil
}

// wake makes the poller's epoll_wait return, unless the poller has
// released the eventfd already (its number may belong to another file by
// then).
func (w *Watcher) wake() {
	w.wakeMu.Lock()
	defer w.wakeMu.Unlock()
	if w.wakefd >= 0 {
		var one [8]byte
		one[0] = 1
		unix.Write(w.wakefd, one[:]) // an error means it is awake anyway
	}
}

// Err returns what ended the stream on its own, or nil.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Stats returns counters; safe to call at any time.
func (w *Watcher) Stats() Stats {
	return Stats{Events: w.events.Load(), Resyncs: w.resyncs.Load(), Forged: w.forged.Load(), Namespaces: int(w.watching.Load())}
}

func (w *Watcher) poll(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev))
}

// enter runs fn in ns's network namespace: directly when that is the
// process's own (so watching "self" needs no privilege), else through Do.
func (w *Watcher) enter(ns *nsjoin.NS, fn func() error) error {
	id := ns.ID()
	if (nsKey{id.Dev, id.Inode}) == w.self {
		return fn()
	}
	return ns.Do(fn)
}

// inNS runs fn in n's network namespace, through n's handle when it has
// one, else through a handle got back from n's socket and closed after.
func (w *Watcher) inNS(n *nsw, fn func() error) error {
	switch {
	case n.key == w.self:
		return fn()
	case n.ns != nil:
		return n.ns.Do(fn)
	}
	ns, err := socketNS(n.fd)
	if err != nil {
		return err
	}
	defer ns.Close()
	return ns.Do(fn)
}

// addExplicit watches a namespace the caller named.
func (w *Watcher) addExplicit(ns *nsjoin.NS, labels map[nsKey]*sighting) error {
	id := ns.ID()
	key := nsKey{id.Dev, id.Inode}
	if _, dup := w.byKey[key]; dup {
		return nil // the same namespace named twice
	}
	own, err := ns.Dup()
	if err != nil {
		return err
	}
	// The pidfd (a PID reference) is the handle's: polled here, closed
	// with it.
	n := &nsw{ns: own, key: key, explicit: true, pidfd: own.PidFD(), fd: -1,
		info: Namespace{Dev: id.Dev, Inode: id.Inode, Ref: ns.Ref(), PID: ns.PID()}}
	if s := labels[key]; s != nil {
		n.info.Name = s.name
		if n.info.PID == 0 {
			n.info.PID = s.pid
		}
	}
	if ref := ns.Ref(); ns.PID() == 0 && ref != "self" && !strings.ContainsRune(ref, '/') {
		n.info.Name = ref // an ip-netns name
	}
	if err := w.open(n, own); err != nil {
		n.close()
		return err
	}
	return nil
}

// open creates n's subscribed socket inside ns, n's namespace, and
// registers it; n is dumped later, by the poller. ns stays the caller's.
func (w *Watcher) open(n *nsw, ns *nsjoin.NS) error {
	var fd int
	err := w.enter(ns, func() error {
		var err error
		fd, err = newSocket(true)
		return err
	})
	if err != nil {
		return err
	}
	n.fd = fd
	if err := subscribe(fd, groupsFor(w.kinds), w.opts.RcvBuf); err != nil {
		return err
	}
	if err := w.poll(fd); err != nil {
		return err
	}
	w.byFD[fd], w.byKey[n.key] = n, n
	if n.pidfd >= 0 {
		// A pidfd turns readable when its process exits (zombie or not),
		// so a PID reference ends at once, not at the next tick.
		if err := w.poll(n.pidfd); err != nil {
			return err
		}
		w.byFD[n.pidfd] = n
	}
	w.fresh = append(w.fresh, n)
	w.watching.Add(1)
	return nil
}

func (n *nsw) close() {
	if n.fd >= 0 {
		unix.Close(n.fd) // closing removes it from epoll
		n.fd = -1
	}
	n.pidfd = -1 // n.ns's, closed with it
	if n.ns != nil {
		n.ns.Close()
	}
}

// remove stops watching n.
func (w *Watcher) remove(n *nsw) {
	if w.byKey[n.key] != n {
		return
	}
	delete(w.byFD, n.fd)
	if n.pidfd >= 0 {
		// A duplicate of the caller's pidfd shares its open file, which
		// stays registered in epoll after this descriptor is closed.
		unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, n.pidfd, nil)
		delete(w.byFD, n.pidfd)
	}
	delete(w.byKey, n.key)
	n.close()
	w.watching.Add(-1)
}

// release frees everything; the poller calls it on its way out (and New
// on failure).
func (w *Watcher) release() {
	for _, n := range w.byKey {
		n.close()
	}
	w.byFD, w.byKey = map[int]*nsw{}, map[nsKey]*nsw{}
	w.watching.Store(0)
	if w.disc != nil {
		w.disc.close()
	}
	if w.epfd >= 0 {
		unix.Close(w.epfd)
	}
	w.wakeMu.Lock()
	if w.wakefd >= 0 {
		unix.Close(w.wakefd)
		w.wakefd = -1
	}
	w.wakeMu.Unlock()
}

func (w *Watcher) fail(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

// emit delivers ev unless the watcher is closing; false means stop now.
func (w *Watcher) emit(ev Event) bool {
	select {
	case w.out <- ev:
		w.events.Add(1)
		return true
	case <-w.done:
		return false
	}
}

func (w *Watcher) closing() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// errStop unwinds the poller when Close was called.
var errStop = errors.New("stop")

// run is the poller: one goroutine reads every socket.
func (w *Watcher) run() {
	defer func() {
		w.markReady()
		w.release()
		close(w.out)
		if w.stop != nil {
			w.stop()
		}
		close(w.exited)
	}()
	evs := make([]unix.EpollEvent, 128)
	nextTick := time.Now().Add(w.opts.Rescan)
	for {
		if err := w.settle(); err != nil {
			return
		}
		w.markReady()
		if !w.opts.All && len(w.byKey) == 0 {
			return // every namespace named has gone
		}
		timeout := time.Until(nextTick)
		if w.disc != nil && len(w.disc.pending) > 0 && timeout > pendingRetry {
			timeout = pendingRetry
		}
		ms := int(timeout / time.Millisecond)
		if ms < 0 {
			ms = 0
		}
		n, err := unix.EpollWait(w.epfd, evs, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			w.fail(os.NewSyscallError("epoll_wait", err))
			return
		}
		for _, ev := range evs[:n] {
			fd := int(ev.Fd)
			switch {
			case fd == w.wakefd:
				return
			case w.disc != nil && fd == w.disc.inofd:
				w.disc.readInotify(w)
			default:
				nn := w.byFD[fd]
				switch {
				case nn == nil:
				case fd == nn.pidfd:
					if err := w.gone(nn, fmt.Sprintf("process %d exited", nn.info.PID)); err == errStop {
						return
					}
				default:
					if err := w.read(nn); err == errStop {
						return
					}
				}
			}
		}
		if w.closing() {
			return
		}
		if w.disc != nil && len(w.disc.pending) > 0 {
			if err := w.disc.retryPending(w); err == errStop {
				return
			}
		}
		if now := time.Now(); !now.Before(nextTick) || (w.disc != nil && w.disc.scanNow) {
			nextTick = now.Add(w.opts.Rescan)
			if err := w.tick(); err == errStop {
				return
			}
		}
	}
}

// settle dumps namespaces added since the last round and resyncs or
// refreshes those that need it.
func (w *Watcher) settle() error {
	for len(w.fresh) > 0 {
		if w.closing() {
			return errStop
		}
		n := w.fresh[0]
		w.fresh = w.fresh[1:]
		if w.byKey[n.key] != n {
			continue
		}
		if err := w.start(n); err != nil {
			return err
		}
	}
	for _, n := range w.byKey {
		if w.closing() {
			return errStop
		}
		if n.overflow {
			if err := w.resync(n); err != nil {
				return err
			}
		} else if n.refresh {
			if err := w.refreshAfterLinkDown(n); err != nil {
				return err
			}
		}
	}
	if w.closing() {
		return errStop
	}
	return nil
}

// start reads a new namespace's state, reporting it as Initial events if
// asked to.
func (w *Watcher) start(n *nsw) error {
	recs, err := w.dump(n, w.dumpKinds())
	if err == errStop {
		return err
	}
	if err != nil {
		return w.lost(n, fmt.Errorf("read state: %w", err))
	}
	n.state, n.links = map[string]obj{}, map[int32]linkInfo{}
	for _, r := range recs {
		n.store(r, w.kinds)
	}
	if n.announce {
		if !w.emit(Event{Time: time.Now(), NS: n.info, Action: Appeared, Text: "namespace appeared"}) {
			return errStop
		}
	}
	// A namespace found after the start may have changed between its
	// creation and the subscription (`ip netns add X; ip -n X link add
	// ...`): its state as dumped after subscribing is reported, so that
	// nothing made before is lost.
	if w.opts.Initial || n.announce {
		now := time.Now()
		for _, r := range recs {
			if !w.kinds.Has(r.kind) {
				continue
			}
			if !w.emit(w.event(n, r, Initial, now)) {
				return errStop
			}
		}
	}
	return nil
}

// lost reports that a namespace can no longer be watched and drops it.
func (w *Watcher) lost(n *nsw, err error) error {
	w.remove(n)
	if !w.emit(Event{Time: time.Now(), NS: n.info, Action: Failed, Text: err.Error()}) {
		return errStop
	}
	return nil
}

func (w *Watcher) dumpKinds() []Kind {
	kinds := []Kind{Link}
	for _, k := range AllKinds[1:] {
		if w.kinds.Has(k) {
			kinds = append(kinds, k)
		}
	}
	return kinds
}

// dump reads the current objects of kinds from n's namespace, over a
// socket made for the purpose, so that the subscribed socket's queue is
// left alone.
func (w *Watcher) dump(n *nsw, kinds []Kind) ([]record, error) {
	var fd int
	err := w.inNS(n, func() error {
		var err error
		fd, err = newSocket(false)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := setRecvTimeout(fd, dumpSlice); err != nil {
		return nil, err
	}
	if err := nlwire.ConnectKernel(fd); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		recs, err := w.dumpOnce(fd, n, kinds)
		if errors.Is(err, errDumpInterrupted) {
			if attempt < 3 {
				continue
			}
			// Under a steady stream of changes every dump may be
			// interrupted. An inconsistent dump is still usable: each
			// change that raced with it is also queued on the subscribed
			// socket (subscribed, and drained, before the dump began), and
			// applying those afterwards makes the state right.
			return recs, nil
		}
		return recs, err
	}
}

func (w *Watcher) dumpOnce(fd int, n *nsw, kinds []Kind) ([]record, error) {
	var recs []record
	var interrupted error
	names := map[int32]string{}
	// A dump that omits links labels with the names already known.
	resolve := func(i int32) string {
		if s, ok := names[i]; ok {
			return s
		}
		return n.name(i)
	}
	for _, k := range kinds {
		err := dumpKind(fd, k, w.buf, &w.forged, w.closing, func(h *unix.NlMsghdr, payload []byte) error {
			r, ok, err := parse(h, payload, resolve)
			if err != nil || !ok {
				return err
			}
			if r.kind == Link {
				names[r.index] = r.name
			}
			recs = append(recs, r)
			return nil
		})
		if errors.Is(err, errDumpInterrupted) {
			interrupted = err
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	return recs, interrupted
}

// store records r in n's state without reporting it.
func (n *nsw) store(r record, kinds Kinds) {
	if r.kind == Link {
		if r.del {
			delete(n.links, r.index)
		} else {
			n.links[r.index] = linkInfo{r.name, r.flags}
		}
	} else if !kinds.Has(r.kind) {
		return
	}
	if r.stateless {
		return
	}
	if r.del {
		delete(n.state, r.key)
		return
	}
	if r.replaceBase != "" {
		for k := range n.state {
			if strings.HasPrefix(k, r.replaceBase) {
				delete(n.state, k)
			}
		}
	}
	n.state[r.key] = obj{kind: r.kind, text: r.text, index: r.index, name: r.name, flags: r.flags}
}

func (w *Watcher) event(n *nsw, r record, a Action, t time.Time) Event {
	return Event{Time: t, NS: n.info, Kind: r.kind.String(), Action: a, Key: r.key, Text: r.text,
		Index: int(r.index), Dev: r.dev, Notes: r.notes, Object: r.obj}
}

// read takes what is queued on n's socket, a bounded number of reads at a
// time so that one busy namespace does not starve the others. Datagrams
// not sent by the kernel are dropped unread and counted.
func (w *Watcher) read(n *nsw) error {
	for i := 0; i < 64; i++ {
		nr, rflags, kernel, err := nlwire.Recv(n.fd, w.buf, unix.MSG_DONTWAIT)
		if err == nil && rflags&unix.MSG_TRUNC != 0 && kernel {
			err = unix.ENOBUFS // cut short is lost too: resync
		}
		switch err {
		case nil:
		case unix.EAGAIN:
			return nil
		case unix.EINTR:
			continue
		case unix.ENOBUFS:
			// Messages were dropped: what is known is no longer true.
			n.overflow = true
			w.overflows.Add(1)
			return nil
		default:
			return w.lost(n, os.NewSyscallError("recvmsg", err))
		}
		if !kernel {
			w.forged.Add(1)
			continue
		}
		if err := w.handle(n, w.buf[:nr], time.Now()); err != nil {
			return err
		}
	}
	return nil
}

// handle applies the messages of one datagram from the kernel to n and
// reports them. A message that does not parse is skipped, not fatal.
func (w *Watcher) handle(n *nsw, b []byte, now time.Time) error {
	return eachMessage(b, func(h *unix.NlMsghdr, payload []byte) error {
		r, ok, err := parse(h, payload, n.name)
		if err != nil || !ok {
			return nil
		}
		return w.apply(n, r, now)
	})
}

// apply updates n's state with a live change and reports it.
func (w *Watcher) apply(n *nsw, r record, now time.Time) error {
	key := r.key
	_, existed := n.state[key]
	if r.kind == Link {
		prev, known := n.links[r.index]
		existed = known
		if r.del {
			if r.newNetnsID >= 0 {
				r.notes = append(r.notes, fmt.Sprintf("moved to netnsid %d", r.newNetnsID))
			}
			n.refresh = true
		} else if known {
			if prev.name != r.name {
				r.notes = append(r.notes, "renamed from "+prev.name)
			}
			switch wasUp, up := prev.flags&unix.IFF_UP != 0, r.flags&unix.IFF_UP != 0; {
			case wasUp && !up:
				r.notes = append(r.notes, "down")
				n.refresh = true
			case !wasUp && up:
				r.notes = append(r.notes, "up")
			}
			switch was, is := prev.flags&unix.IFF_LOWER_UP != 0, r.flags&unix.IFF_LOWER_UP != 0; {
			case was && !is:
				r.notes = append(r.notes, "carrier lost")
			case !was && is:
				r.notes = append(r.notes, "carrier")
			}
		}
	}
	n.store(r, w.kinds)
	if !w.kinds.Has(r.kind) {
		return nil
	}
	a := Added
	switch {
	case r.del:
		a = Deleted
	case existed:
		a = Changed
	}
	if !w.emit(w.event(n, r, a, now)) {
		return errStop
	}
	return nil
}

// diff compares the state of kinds in n with a fresh dump and returns the
// changes, in dump order, deletions last. It replaces n's state of those
// kinds with the dump's.
func (w *Watcher) diff(n *nsw, recs []record, kinds []Kind) []Change {
	in := map[Kind]bool{}
	for _, k := range kinds {
		in[k] = true
	}
	fresh := map[string]obj{}
	links := map[int32]linkInfo{}
	tmp := &nsw{state: fresh, links: links}
	for _, r := range recs {
		tmp.store(r, w.kinds)
	}
	var changes []Change
	for _, r := range recs {
		if r.stateless || !w.kinds.Has(r.kind) {
			continue
		}
		cur, ok := fresh[r.key]
		if !ok || cur.text != r.text {
			continue // a later message of the dump replaced it
		}
		switch old, had := n.state[r.key]; {
		case !had:
			changes = append(changes, Change{Kind: r.kind.String(), Action: Added, Key: r.key, Text: r.text})
		case old.text != r.text:
			changes = append(changes, Change{Kind: r.kind.String(), Action: Changed, Key: r.key, Text: r.text})
		}
	}
	var gone []Change
	for key, old := range n.state {
		if !in[old.kind] {
			continue
		}
		if _, ok := fresh[key]; !ok {
			if w.kinds.Has(old.kind) {
				gone = append(gone, Change{Kind: old.kind.String(), Action: Deleted, Key: key, Text: old.text})
			}
			delete(n.state, key)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].Key < gone[j].Key })
	for key, o := range fresh {
		n.state[key] = o
	}
	if in[Link] {
		n.links = links
	}
	return append(changes, gone...)
}

// maxDrain bounds how many datagrams a resync drops before its dump. Under
// a sustained stream the queue never empties; what is left is applied
// after the dump like any later change, which converges, since the last
// message about an object is the newest.
const maxDrain = 1 << 16

// drain drops what is queued on n's socket, up to maxDrain datagrams, and
// stops at once when the watcher is closing.
func (w *Watcher) drain(n *nsw) error {
	for i := 0; i < maxDrain; i++ {
		if w.closing() {
			return errStop
		}
		_, _, _, err := nlwire.Recv(n.fd, w.buf, unix.MSG_DONTWAIT)
		switch err {
		case nil, unix.ENOBUFS, unix.EINTR:
		case unix.EAGAIN:
			return nil
		default:
			return w.lost(n, os.NewSyscallError("recvmsg", err))
		}
	}
	return nil
}

// resync recovers from an overflow: drop what is queued (it is older than
// the dump that follows), dump, and report the differences as one event.
func (w *Watcher) resync(n *nsw) error {
	n.overflow, n.refresh = false, false
	if err := w.drain(n); err != nil {
		return err
	}
	kinds := w.dumpKinds()
	recs, err := w.dump(n, kinds)
	if err == errStop {
		return err
	}
	if err != nil {
		return w.lost(n, fmt.Errorf("resync after overflow: %w", err))
	}
	changes := w.diff(n, recs, kinds)
	w.resyncs.Add(1)
	var added, changed, deleted int
	for _, c := range changes {
		switch c.Action {
		case Added:
			added++
		case Changed:
			changed++
		case Deleted:
			deleted++
		}
	}
	text := fmt.Sprintf("receive queue overflowed (ENOBUFS), events were lost; state read again: %d added, %d changed, %d deleted", added, changed, deleted)
	if !w.emit(Event{Time: time.Now(), NS: n.info, Action: Resync, Text: text, Changes: changes}) {
		return errStop
	}
	return nil
}

// refreshAfterLinkDown re-reads routes and neighbours after a link went
// down or away: the kernel removes IPv4 routes through it without a
// notification, and the state would otherwise keep them.
func (w *Watcher) refreshAfterLinkDown(n *nsw) error {
	n.refresh = false
	var kinds []Kind
	for _, k := range []Kind{Route, Neigh} {
		if w.kinds.Has(k) {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return nil
	}
	recs, err := w.dump(n, kinds)
	if err == errStop {
		return err
	}
	if err != nil {
		return w.lost(n, fmt.Errorf("re-read routes after link down: %w", err))
	}
	now := time.Now()
	for _, c := range w.diff(n, recs, kinds) {
		ev := Event{Time: now, NS: n.info, Kind: c.Kind, Action: c.Action, Key: c.Key, Text: c.Text}
		if c.Action == Deleted {
			ev.Notes = []string{"flushed with its link, without a notification"}
		}
		if !w.emit(ev) {
			return errStop
		}
	}
	return nil
}

// tick checks that watched namespaces still exist and, with All, looks
// for new ones.
func (w *Watcher) tick() error {
	var seen map[nsKey]*sighting
	if w.disc != nil {
		w.disc.scanNow = false
		w.disc.ensureWatch()
		seen = scanSystem(w.opts.HostRoot)
	}
	for _, n := range w.sorted() {
		reason := ""
		switch {
		case n.explicit:
			reason = n.goneExplicit()
		case seen[n.key] == nil:
			reason = "no process or name refers to it any more"
		default:
			s := seen[n.key]
			n.info.Name, n.info.PID = s.name, s.pid
		}
		if reason == "" {
			continue
		}
		if err := w.gone(n, reason); err != nil {
			return err
		}
	}
	if w.disc != nil {
		return w.disc.addNew(w, seen)
	}
	return nil
}

// gone stops watching n and says why.
func (w *Watcher) gone(n *nsw, reason string) error {
	w.remove(n)
	if !w.emit(Event{Time: time.Now(), NS: n.info, Action: Gone, Text: "namespace gone: " + reason}) {
		return errStop
	}
	return nil
}

func (w *Watcher) sorted() []*nsw {
	list := make([]*nsw, 0, len(w.byKey))
	for _, n := range w.byKey {
		list = append(list, n)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].key.ino < list[j].key.ino })
	return list
}

// goneExplicit says why a namespace named by the caller is gone, or "".
func (n *nsw) goneExplicit() string {
	_, why := n.ns.Gone()
	return why
}
