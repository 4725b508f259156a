package tapdev

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest"
)

// TestReadBatchIdle checks that a batch read of an idle device waits in
// Go's poller (so a deadline or Close ends it) instead of in the kernel.
func TestReadBatchIdle(t *testing.T) {
	nsName := nstest.NetNS(t)
	ns := openNS(t, nsName)
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
