package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/nsjoin"
	"github.com/netobs/netobs/tapdev"
)

// batch is how many frames one ReadBatch may return: enough to amortise
// the poller round trip at full rate, small enough to keep 64 KiB
// buffers cheap (untouched pages cost nothing).
const batch = 64

// frameBuf holds the largest frame a TUN/TAP device passes: a 64 KiB IP
// packet plus an Ethernet header with VLAN tag.
const frameBuf = 65536 + 18

// Run creates the device in the target, then reads (and injects) until
// one of the stop conditions in the package documentation. It always
// removes the device (unless persistent) before returning. The error is
// nil for every orderly stop; Result.Reason says which.
func Run(ctx context.Context, o Options) (Result, error) {
	res, err := run(ctx, o)
	var named namedError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &named):
		// nsjoin and tapdev name the reference already.
		return res, fmt.Errorf("attach: %w", named.error)
	default:
		return res, fmt.Errorf("attach %s: %w", o.Ref, err)
	}
}

// namedError marks an error whose text already names the namespace.
type namedError struct{ error }

func (e namedError) Unwrap() error { return e.error }

type runner struct {
	o    Options
	dev  *tapdev.Device
	sink sink
	mu   sync.Mutex // guards sink and res.Read
	res  Result

	stopOnce sync.Once
	stopped  chan struct{}
	stopErr  error
	nread    atomic.Uint64
}

func (r *runner) stop(reason StopReason, detail string, err error) {
	r.stopOnce.Do(func() {
		r.res.Reason, r.res.Detail, r.stopErr = reason, detail, err
		close(r.stopped)
	})
}

func (r *runner) isStopped() bool {
	select {
	case <-r.stopped:
		return true
	default:
		return false
	}
}

func run(ctx context.Context, o Options) (Result, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.WatchInterval <= 0 {
		o.WatchInterval = 100 * time.Millisecond
	}
	ns := o.NS
	if ns == nil {
		var err error
		if ns, err = nsjoin.Open(o.Ref); err != nil {
			return Result{}, namedError{err}
		}
		defer ns.Close()
	}
	useRing := !o.ReadQueue && !o.InjectOnly && !o.Device.Persist
	// Reading the ring, the device drops what it is sent once the ring
	// has seen it, so its queue does not hold every frame a second time.
	o.Device.Discard = useRing
	// The ring is bound before the device goes up, so that it sees the
	// first frame the namespace sends through it.
	var cp *capture.Capture
	if useRing {
		o.Device.BeforeUp = func(d *tapdev.Device) error {
			var err error
			cp, err = openRing(ns, d.Name())
			return err
		}
	}
	dev, err := tapdev.Create(ns, o.Device)
	if useRing && errors.Is(err, tapdev.ErrNoDiscard) {
		// A tun's discard filter is an eBPF program, which this process
		// may not load (CAP_BPF): read the queue, as --read-queue does.
		fmt.Fprintf(o.Log, "netobs: reading the device's queue instead of a ring: %v\n", err)
		useRing, o.Device.Discard, o.Device.BeforeUp = false, false, nil
		dev, err = tapdev.Create(ns, o.Device)
	}
	if cp != nil {
		defer cp.Close()
	}
	if err != nil {
		return Result{}, namedError{err}
	}
	defer dev.Close()
	r := &runner{o: o, dev: dev, stopped: make(chan struct{})}
	r.res.Device, r.res.Namespace, r.res.Ring = dev.Name(), dev.Namespace(), useRing
	if r.sink, err = newSink(o.Output, o.Format, dev.Name(), dev.Kind(), dev.Namespace(), o.Owner); err != nil {
		return r.res, fmt.Errorf("write %v header: %w", o.Format, err)
	}
	before, err := dev.Stats()
	if err != nil {
		return r.res, err
	}
	mirror := ""
	if m := dev.Mirroring(); m != "" {
		mirror = ", mirroring " + m
	}
	var wg sync.WaitGroup
	// Subscribed before "attached" is said, so that every change made
	// after it is reported.
	stopEvents := func() {}
	if o.Events != 0 {
		evCtx, cancel := context.WithCancel(ctx)
		ch, err := events.Watch(evCtx, ns, o.Events)
		if err != nil {
			cancel()
			return r.res, fmt.Errorf("watch events: %w", err)
		}
		stopEvents = cancel
		wg.Add(1)
		go func() { defer wg.Done(); r.relayEvents(ch) }()
	}
	how := ""
	if useRing {
		how = ", read through an AF_PACKET ring"
	}
	fmt.Fprintf(o.Log, "netobs: attached %s %s (%d queue(s)%s%s) in %s (%s)\n", dev.Kind(), dev.Name(), len(dev.Queues()), mirror, how, dev.Namespace(), o.Ref)

	ringCtx, stopRing := context.WithCancel(context.Background())
	defer stopRing()
	ringDone := make(chan struct{})
	if cp != nil {
		go func() { defer close(ringDone); r.readRing(ringCtx, cp) }()
	} else {
		close(ringDone)
	}
	if !o.InjectOnly && cp == nil {
		for _, q := range dev.Queues() {
			wg.Add(1)
			go func() { defer wg.Done(); r.read(q) }()
		}
	}
	if o.Inject != nil {
		wg.Add(1)
		go func() { defer wg.Done(); r.inject() }()
	}
	r.watch(ctx, ns)
	stopEvents()

	// Stop the readers without closing the device, so the final counts
	// can still be read from the kernel.
	atStop, statsErr := dev.Stats()
	stopRing() // the ring's reader delivers what the kernel handed over, then returns
	for _, q := range dev.Queues() {
		q.SetReadDeadline(time.Now())
	}
	wg.Wait()
	<-ringDone
	if cp == nil && (r.res.Reason == Cancelled || r.res.Reason == NamespaceGone) {
		// Frames the namespace sent before the stop are still queued in
		// the kernel; they belong in the output.
		r.drain()
	}
	r.res.Read = r.nread.Load()
	switch {
	case cp != nil:
		st := cp.Stats()[0]
		r.res.Dropped = st.Dropped
		// Frames the device dropped that the ring did not receive: those
		// that skip the packet taps (the ring was bound before the device
		// went up, so it missed none before). Counted where the ring ran
		// until after the device's counter was read, so that no frame
		// sent after the stop counts.
		if statsErr == nil && (r.res.Reason == Cancelled || r.res.Reason == NamespaceGone) && atStop.TxDropped > st.Received {
			r.res.Dropped = st.Dropped + atStop.TxDropped - st.Received
		}
	default:
		if after, err := dev.Stats(); err == nil {
			r.res.Dropped = after.TxDropped - before.TxDropped
		}
	}
	r.mu.Lock()
	ferr := r.sink.flush(true, &r.res)
	r.mu.Unlock()
	cerr := dev.Close()
	if dev.Persistent() {
		fmt.Fprintf(o.Log, "netobs: left %s in %s (persistent)\n", dev.Name(), dev.Namespace())
	}
	if r.stopErr != nil {
		return r.res, r.stopErr
	}
	if ferr != nil && !errors.Is(ferr, unix.EPIPE) {
		return r.res, fmt.Errorf("write output: %w", ferr)
	}
	return r.res, cerr
}

// watch waits for a stop condition, checking the namespace and flushing
// binary output every interval so a pipe reader sees frames while they
// come.
func (r *runner) watch(ctx context.Context, ns *nsjoin.NS) {
	t := time.NewTicker(r.o.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stopped:
			return
		case <-ctx.Done():
			r.stop(Cancelled, "", nil)
			return
		case <-t.C:
			if gone, why := ns.Gone(); gone {
				r.stop(NamespaceGone, why, nil)
				return
			}
			if _, err := r.dev.Stats(); errors.Is(err, tapdev.ErrGone) {
				r.stop(DeviceGone, r.dev.Name()+" deleted in the namespace", nil)
				return
			} else if err != nil {
				r.stop(0, "", err)
				return
			}
			if r.dev.MirrorGone() {
				r.stop(MirrorGone, r.o.Device.Mirror+" deleted in the namespace", nil)
				return
			}
			r.mu.Lock()
			err := r.sink.flush(false, nil)
			r.mu.Unlock()
			if err != nil {
				r.outputFailed(err)
				return
			}
		}
	}
}

// maxDrain bounds the final drain when the namespace keeps sending.
const maxDrain = 1 << 20

func newBufs() ([][]byte, []int) {
	slab := make([]byte, batch*frameBuf)
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = slab[i*frameBuf : (i+1)*frameBuf : (i+1)*frameBuf]
	}
	return bufs, make([]int, batch)
}

func (r *runner) read(q *tapdev.Queue) {
	bufs, sizes := newBufs()
	for {
		n, err := q.ReadBatch(bufs, sizes)
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, os.ErrClosed):
			case errors.Is(err, unix.EBADFD):
				r.stop(DeviceGone, r.dev.Name()+" deleted in the namespace", nil)
			default:
				r.stop(0, "", fmt.Errorf("read %s: %w", r.dev.Name(), err))
			}
			return
		}
		if !r.write(bufs[:n], sizes) {
			return
		}
	}
}

// drain reads what is left in the queues without waiting, once the
// readers have stopped.
func (r *runner) drain() {
	bufs, sizes := newBufs()
	for _, q := range r.dev.Queues() {
		q.SetReadDeadline(time.Time{})
		for total := 0; total < maxDrain; {
			n, err := q.TryReadBatch(bufs, sizes)
			if n == 0 || err != nil || !r.write(bufs[:n], sizes) {
				break
			}
			total += n
		}
	}
}

// write writes a batch of frames to the sink, up to Count, and reports
// whether reading should go on.
func (r *runner) write(bufs [][]byte, sizes []int) bool {
	count := r.o.Count
	r.mu.Lock()
	total := r.nread.Load()
	var werr error
	// One timestamp for the batch: its frames were read by one system
	// call, and reading the clock per frame cost 3 % of the CPU per frame.
	now := time.Now()
	for i := range bufs {
		if count > 0 && total >= count {
			break
		}
		if werr = r.sink.frame(now, bufs[i][:sizes[i]]); werr != nil {
			break
		}
		total++
	}
	r.nread.Store(total)
	if werr == nil && (r.o.Format == Text || r.o.Format == JSON) {
		werr = r.sink.flush(false, nil)
	}
	r.mu.Unlock()
	if werr != nil {
		r.outputFailed(werr)
		return false
	}
	if count > 0 && total >= count {
		r.stop(CountReached, "", nil)
		return false
	}
	return true
}

// ringSize is the AF_PACKET ring attach reads: about 130,000 64-byte or
// 10,000 1500-byte frames.
const ringSize = 16 << 20

// ringBlockTimeout bounds how late a frame is handed over when few come.
const ringBlockTimeout = 10 * time.Millisecond

// openRing opens the AF_PACKET ring on the device in the target (capture
// creates its socket there through nsjoin) that keeps only the frames the
// device transmits: those the namespace sends through it.
func openRing(ns *nsjoin.NS, dev string) (*capture.Capture, error) {
	cp, err := capture.Open([]capture.Target{{NS: ns, Label: dev}}, capture.Config{
		Interfaces: []string{dev}, Snaplen: snapLen, BufferSize: ringSize,
		BlockTimeout: ringBlockTimeout, Outgoing: true,
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dev, err)
	}
	return cp, nil
}

// readRing writes what the ring receives until ctx is cancelled (after
// the frames handed over by then), Count is reached, the output fails or
// the device goes away.
func (r *runner) readRing(ctx context.Context, cp *capture.Capture) {
	h := &ringHandler{r: r}
	if err := cp.Run(ctx, h); err != nil && !r.isStopped() {
		r.stop(0, "", fmt.Errorf("read %s: %w", r.dev.Name(), err))
	}
}

// ringHandler hands the ring's frames to the sink.
type ringHandler struct {
	r   *runner
	buf []byte // a frame whose VLAN tag the ring put back (Head)
}

func (h *ringHandler) Packet(p *capture.Packet) error {
	data := p.Data
	if len(p.Head) > 0 {
		h.buf = append(append(h.buf[:0], p.Head...), p.Data...)
		data = h.buf
	}
	if !h.r.writeOne(p.Time, data) {
		return capture.ErrStop
	}
	return nil
}

// Flush pushes text and JSON out whenever the ring is caught up; the
// watch flushes binary output on its interval.
func (h *ringHandler) Flush() error {
	r := h.r
	if r.o.Format != Text && r.o.Format != JSON {
		return nil
	}
	r.mu.Lock()
	err := r.sink.flush(false, nil)
	r.mu.Unlock()
	if err != nil {
		r.outputFailed(err)
		return capture.ErrStop
	}
	return nil
}

func (h *ringHandler) Ended(_ *capture.Interface, reason error) {
	if errors.Is(reason, capture.ErrNamespaceGone) {
		h.r.stop(NamespaceGone, reason.Error(), nil)
		return
	}
	h.r.stop(DeviceGone, h.r.dev.Name()+" deleted in the namespace", nil)
}

// writeOne writes one frame to the sink, up to Count, and reports
// whether reading should go on.
func (r *runner) writeOne(ts int64, data []byte) bool {
	count := r.o.Count
	r.mu.Lock()
	total := r.nread.Load()
	if count > 0 && total >= count {
		r.mu.Unlock()
		r.stop(CountReached, "", nil)
		return false
	}
	err := r.sink.frame(time.Unix(0, ts), data)
	if err == nil {
		total++
		r.nread.Store(total)
	}
	r.mu.Unlock()
	if err != nil {
		r.outputFailed(err)
		return false
	}
	if count > 0 && total >= count {
		r.stop(CountReached, "", nil)
		return false
	}
	return true
}

// relayEvents writes the namespace's events into the output between
// frames until the watch ends (its channel closes).
func (r *runner) relayEvents(ch <-chan events.Event) {
	for ev := range ch {
		if r.o.Label != "" || r.o.Owner != nil {
			ev.NS.Label, ev.NS.Owner = r.o.Label, r.o.Owner
		}
		if r.o.Format.Binary() {
			events.WriteText(r.o.Log, ev)
			continue
		}
		r.mu.Lock()
		err := r.sink.event(ev)
		if err == nil {
			err = r.sink.flush(false, nil)
		}
		r.mu.Unlock()
		if err != nil {
			r.outputFailed(err)
		}
	}
}

// outputFailed stops on a write error; a closed pipe is an orderly end.
func (r *runner) outputFailed(err error) {
	if errors.Is(err, unix.EPIPE) {
		r.stop(OutputClosed, "", nil)
		return
	}
	r.stop(0, "", fmt.Errorf("write output: %w", err))
}

func (r *runner) inject() {
	in := r.o.Inject
	q := r.dev.Queues()[0]
	start := time.Now()
	var firstErr error
	// A batch of frames is handed out by the reader, in place where it
	// can (a classic pcap file), and written with one WriteBatch call.
	frames := make([][]byte, 0, batch)
	for !r.isStopped() {
		var err error
		frames, err = in.batch(frames[:0], batch)
		if err == io.EOF {
			break
		}
		if err != nil {
			// A file that changed since OpenInject read it through,
			// or one that could not be read ahead (a pipe).
			r.stop(0, "", fmt.Errorf("inject %s: %w", in.Path, err))
			break
		}
		n, err := q.WriteBatch(frames)
		r.res.Written += uint64(n)
		if errors.Is(err, os.ErrClosed) {
			break
		}
		r.res.InjectFailed += uint64(len(frames) - n)
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	r.res.InjectTime = time.Since(start)
	rate := float64(r.res.Written) / r.res.InjectTime.Seconds()
	how := "one write(2) per frame"
	if q.WritesUring() {
		how = fmt.Sprintf("io_uring batches of %d", batch)
	}
	fmt.Fprintf(r.o.Log, "netobs: injected %d frames from %s into %s in %v (%.0f frames/s, %s)", r.res.Written, in.Path, r.dev.Name(), r.res.InjectTime.Round(time.Microsecond), rate, how)
	if r.res.InjectFailed > 0 || firstErr != nil {
		fmt.Fprintf(r.o.Log, "; %d failed, first: %v", r.res.InjectFailed, firstErr)
	}
	fmt.Fprintln(r.o.Log)
	if r.o.InjectOnly {
		r.stop(InjectDone, "", nil)
	}
}
