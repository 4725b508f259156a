package tapdev

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest/nsopen"

	"github.com/netobs/netobs/internal/nstest"
)

// TestReadBatchIdle checks that a batch read of an idle device waits in
// Go's poller (so a deadline or Close ends it) instead of in the kernel.
func TestReadBatchIdle(t *testing.T) {
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
	t.Logf("io_uring in use: %v", q.ring != nil)
}

// TestWriteBatch writes a batch with a frame the kernel refuses in the
// middle: the others arrive, in the device's RX counter, and the bad one is
// reported.
func TestWriteBatch(t *testing.T) {
	for _, mode := range []string{"io_uring", "write"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "write" {
				t.Setenv("NETOBS_NO_IO_URING", "1")
			}
			nsName := nstest.NetNS(t)
			ns := nsopen.Open(t, nsName)
			d, err := Create(ns, Config{Kind: TAP})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
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
			d.Close()
			if _, err := d.Queues()[0].WriteBatch(frames[:1]); !errors.Is(err, os.ErrClosed) {
				t.Errorf("WriteBatch after Close: %v", err)
			}
		})
	}
}
