package nsjoin

import (
	"runtime"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest"
	"golang.org/x/sys/unix"
)

// BenchmarkDo measures a Do round trip into a network namespace and, in
// the same run, its two anchors: the raw setns there and back on a thread
// already locked (the floor), and a CNI-style Do that opens the thread's
// own namespace on every call. It reports Do's time as ratios of both.
func BenchmarkDo(b *testing.B) {
	name := nstest.NetNS(b)
	ns, err := Open(name)
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()
	orig, _ := originalNS(Net)
	fn := func() error { return nil }
	ns.Do(fn) // warm up

	// Interleave the three in chunks so that load from elsewhere on the
	// machine falls on all of them alike and the ratios stay meaningful.
	var raw, cni, do time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(1000, b.N-done)
		raw += timeOnLockedThread(n, func() {
			unix.RawSyscall(unix.SYS_SETNS, uintptr(ns.fd), unix.CLONE_NEWNET, 0)
			unix.RawSyscall(unix.SYS_SETNS, uintptr(orig), unix.CLONE_NEWNET, 0)
		})
		cni += timeIt(n, func() { cniStyleDo(ns.fd, fn) })
		do += timeIt(n, func() {
			if err := ns.Do(fn); err != nil {
				b.Fatal(err)
			}
		})
		done += n
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) }
	b.ReportMetric(per(raw), "raw-ns/op")
	b.ReportMetric(per(cni), "cni-ns/op")
	b.ReportMetric(per(do)/per(raw), "x-raw")
	b.ReportMetric(per(cni)/per(raw), "cni-x-raw")
}

func timeIt(n int, f func()) time.Duration {
	start := time.Now()
	for i := 0; i < n; i++ {
		f()
	}
	return time.Since(start)
}

func timeOnLockedThread(n int, f func()) time.Duration {
	done := make(chan time.Duration)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		done <- timeIt(n, f)
	}()
	return <-done
}

// cniStyleDo is the pattern of containernetworking/plugins' ns.Do: a fresh
// locked goroutine that opens its thread's namespace to restore to.
func cniStyleDo(target int, fn func() error) error {
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cur, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(cur)
		unix.Setns(target, unix.CLONE_NEWNET)
		err = fn()
		unix.Setns(cur, unix.CLONE_NEWNET)
		done <- err
	}()
	return <-done
}
