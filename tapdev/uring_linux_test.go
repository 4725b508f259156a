package tapdev

import (
	"errors"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/internal/nstest/nsopen"
)

// ioPaths are the two ways a queue reads and writes batches; each test
// runs both and checks that it tested the one it meant to.
var ioPaths = []string{"io_uring", "syscalls"}

// setPath selects the path of a subtest: NETOBS_NO_IO_URING=1 forces
// read(2) and write(2); the io_uring path needs io_uring on this machine.
func setPath(t *testing.T, path string) {
	t.Helper()
	if path == "syscalls" {
		t.Setenv("NETOBS_NO_IO_URING", "1")
		return
	}
	r, err := newUring(4)
	if err != nil {
		nstest.Unavailable(t, "io_uring unavailable ("+err.Error()+"): check sysctl kernel.io_uring_disabled")
		return
	}
	r.close()
}

// checkPath fails the test unless ring (the queue's read or write ring)
// says the batch went the path meant.
func checkPath(t *testing.T, q *Queue, ring **uring, path string) {
	t.Helper()
	q.ringMu.Lock()
	defer q.ringMu.Unlock()
	if used := *ring != nil && !q.noRing; used != (path == "io_uring") {
		t.Errorf("path %s: ring made %v, read(2)/write(2) forced %v", path, *ring != nil, q.noRing)
	}
}

// TestReadBatchIdle checks that a batch read of an idle device waits in
// Go's poller (so a deadline or Close ends it) instead of in the kernel.
func TestReadBatchIdle(t *testing.T) {
	for _, path := range ioPaths {
		t.Run(path, func(t *testing.T) {
			setPath(t, path)
			nsName := nstest.NetNS(t)
			ns := nsopen.Open(t, nsName)
			d, err := Create(ns, Config{Kind: TAP})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			q := d.Queues()[0]
			bufs := [][]byte{make([]byte, 2048), make([]byte, 2048), make([]byte, 2048), make([]byte, 2048)}
			sizes := make([]int, 4)
			q.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			done := make(chan error, 1)
			go func() {
				frames := 0
				for {
					n, err := q.ReadBatch(bufs, sizes)
					if err != nil {
						t.Logf("%d frames before the deadline", frames)
						done <- err
						return
					}
					frames += n
				}
			}()
			select {
			case err := <-done:
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("ReadBatch on an idle device: %v", err)
				}
			case <-time.After(10 * time.Second):
				d.Close()
				t.Fatal("ReadBatch ignored its deadline")
			}
			checkPath(t, q, &q.ring, path)
		})
	}
}

// writeFrames writes a batch of 100 frames with one the kernel refuses in
// the middle and checks that the others arrive, in the device's RX
// counter, and that the bad one is reported.
func writeFrames(t *testing.T, d *Device) {
	t.Helper()
	before, _ := d.Stats()
	frame := make([]byte, 60)
	copy(frame, []byte{2, 0, 0, 0, 0, 0x99, 2, 0, 0, 0, 0, 0x98, 0x88, 0xb5})
	frames := make([][]byte, 0, 100)
	for i := 0; i < 100; i++ {
		frames = append(frames, frame)
	}
	frames[50] = []byte{1, 2, 3} // shorter than an Ethernet header
	n, err := d.Queues()[0].WriteBatch(frames)
	if n != 99 || err == nil {
		t.Fatalf("WriteBatch = %d, %v; want 99 and an error for the short frame", n, err)
	}
	after, _ := d.Stats()
	if got := after.RxPackets - before.RxPackets; got != 99 {
		t.Errorf("device received %d frames, want 99", got)
	}
}

// TestWriteBatch: the frames of a batch arrive, a bad one is reported,
// and a batch after Close fails with os.ErrClosed.
func TestWriteBatch(t *testing.T) {
	for _, path := range ioPaths {
		t.Run(path, func(t *testing.T) {
			setPath(t, path)
			nsName := nstest.NetNS(t)
			ns := nsopen.Open(t, nsName)
			d, err := Create(ns, Config{Kind: TAP})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			q := d.Queues()[0]
			writeFrames(t, d)
			checkPath(t, q, &q.wring, path)
			if got := q.WritesUring(); got != (path == "io_uring") {
				t.Errorf("path %s: WritesUring() = %v", path, got)
			}
			d.Close()
			if _, err := q.WriteBatch([][]byte{make([]byte, 60)}); !errors.Is(err, os.ErrClosed) {
				t.Errorf("WriteBatch after Close: %v", err)
			}
		})
	}
}

// TestUringWithoutReadWrite plays a kernel without IORING_OP_READ and
// IORING_OP_WRITE (5.1 to 5.5): it fails them with EINVAL and stops
// taking the batch at the first (a short submission). Reads and writes
// must fall back to read(2) and write(2), and no request of a batch may
// stay queued in the ring to run on a later call.
func TestUringWithoutReadWrite(t *testing.T) {
	nstest.RequireTools(t, "ip", "bash")
	setPath(t, "io_uring")
	saved := uringOps
	uringOps.read, uringOps.write = 0xfe, 0xfe
	t.Cleanup(func() { uringOps = saved })
	nsName := nstest.NetNS(t)
	ns := nsopen.Open(t, nsName)
	name := nstest.UniqueName("tap")
	d, err := Create(ns, Config{Kind: TAP, Name: name, Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.7.1/24")}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	q := d.Queues()[0]

	writeFrames(t, d)
	if q.wring == nil || !q.noRing {
		t.Errorf("write ring made %v, fallback to write(2) %v; want both", q.wring != nil, q.noRing)
	}
	checkDrained(t, q.wring)
	if q.WritesUring() {
		t.Error("WritesUring() = true after the fallback to write(2)")
	}

	// Frames queued for reading: three UDP datagrams to a neighbour with
	// a static entry, so they leave through the device at once.
	q.ringMu.Lock()
	q.noRing = false // the read ring, made now, must find out on its own
	q.ringMu.Unlock()
	nstest.Run(t, "ip", "-n", nsName, "neigh", "add", "10.9.7.9", "lladdr", "02:09:07:00:00:09", "dev", name)
	nstest.Run(t, "ip", "netns", "exec", nsName, "bash", "-c", "for i in 1 2 3; do echo x > /dev/udp/10.9.7.9/7777; done")
	bufs := [][]byte{make([]byte, 2048), make([]byte, 2048), make([]byte, 2048), make([]byte, 2048)}
	sizes := make([]int, 4)
	q.SetReadDeadline(time.Now().Add(5 * time.Second))
	udp := 0
	for udp < 3 {
		n, err := q.ReadBatch(bufs, sizes)
		if err != nil {
			t.Fatalf("ReadBatch after %d datagrams: %v", udp, err)
		}
		for i := 0; i < n; i++ {
			if b := bufs[i][:sizes[i]]; len(b) > 37 && b[12] == 8 && b[13] == 0 && b[23] == 17 && b[36] == 0x1e && b[37] == 0x61 {
				udp++
			}
		}
	}
	if q.ring == nil || !q.noRing {
		t.Errorf("read ring made %v, fallback to read(2) %v; want both", q.ring != nil, q.noRing)
	}
	checkDrained(t, q.ring)
}

// checkDrained fails the test if requests are left in the submission
// queue of r.
func checkDrained(t *testing.T, r *uring) {
	t.Helper()
	if r == nil {
		return
	}
	if head, tail := atomic.LoadUint32(r.sqHead), atomic.LoadUint32(r.sqTail); head != tail {
		t.Errorf("%d requests left in the submission queue", tail-head)
	}
}
