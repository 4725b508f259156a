package nstest

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// Snapshot is a count of the process's open file descriptors and
// goroutines, taken before a loop of cycles that must leave neither behind.
type Snapshot struct {
	fds, goroutines int
}

// TakeSnapshot counts what is open now. Warm up first (one cycle) so that
// descriptors opened once per process (nsjoin's own) are counted.
func TakeSnapshot(tb testing.TB) Snapshot {
	tb.Helper()
	return Snapshot{FDCount(tb), Goroutines()}
}

// Goroutines counts the process's goroutines, leaving out nsjoin's idle
// Do workers: nsjoin keeps up to GOMAXPROCS of them parked for the next
// calls, and their number grows with how many Do calls ran at once, not
// with anything left behind.
func Goroutines() int {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.TrimSpace(g) == "" {
			continue
		}
		if strings.Contains(g, "[chan receive") && strings.Contains(g, "nsjoin.(*worker).run(") {
			continue
		}
		count++
	}
	return count
}

// CheckLeaks fails the test if more descriptors or goroutines are open
// than at the snapshot. Goroutines that are ending get a bounded number of
// polls to finish; the failure shows every goroutine's stack.
func (s Snapshot) CheckLeaks(tb testing.TB, what string) {
	tb.Helper()
	if got := FDCount(tb); got > s.fds {
		tb.Errorf("%d file descriptors open after %s, %d before", got, what, s.fds)
	}
	g := Goroutines()
	for i := 0; i < 100 && g > s.goroutines; i++ {
		time.Sleep(10 * time.Millisecond)
		g = Goroutines()
	}
	if g > s.goroutines {
		buf := make([]byte, 1<<16)
		tb.Errorf("%d goroutines after %s, %d before\n%s", g, what, s.goroutines, buf[:runtime.Stack(buf, true)])
	}
}
