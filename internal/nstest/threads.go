package nstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var nsTypes = []string{"net", "uts", "ipc", "mnt", "pid_for_children", "user", "cgroup", "time_for_children"}

// ForeignThreads scans /proc/self/task/*/ns/* and returns a line for every
// thread whose namespace of some type differs from the process's own.
// Threads that exit during the scan are ignored.
func ForeignThreads() []string { return foreignThreads("self") }

// foreignThreads does the scan for /proc/PROC: "self" or a PID.
func foreignThreads(proc string) []string {
	own := map[string]string{}
	for _, t := range nsTypes {
		own[t], _ = os.Readlink("/proc/" + proc + "/ns/" + t)
	}
	tasks, _ := filepath.Glob("/proc/" + proc + "/task/*")
	var bad []string
	for _, task := range tasks {
		for _, t := range nsTypes {
			link, err := os.Readlink(filepath.Join(task, "ns", t))
			if err != nil {
				continue // the thread exited
			}
			if link != own[t] {
				bad = append(bad, fmt.Sprintf("thread %s is in %s, the process in %s", filepath.Base(task), link, own[t]))
			}
		}
	}
	return bad
}

// CheckThreads fails the test if a thread is in a foreign namespace. A
// thread the runtime is terminating may still show for a moment, so the
// scan is repeated a bounded number of times before failing.
func CheckThreads(tb testing.TB) { tb.Helper(); checkThreads(tb, "self") }

// CheckThreadsOf is CheckThreads for another process, such as a netobs
// command a test started: none of its threads may stay in a foreign
// namespace.
func CheckThreadsOf(tb testing.TB, pid int) { tb.Helper(); checkThreads(tb, strconv.Itoa(pid)) }

func checkThreads(tb testing.TB, proc string) {
	tb.Helper()
	var bad []string
	for i := 0; i < 200; i++ {
		if bad = foreignThreads(proc); len(bad) == 0 {
			return
		}
		sleepBriefly()
	}
	tb.Errorf("process %s: %d threads in foreign namespaces, first: %s", proc, len(bad), bad[0])
}

// FDCount returns how many file descriptors the process has open.
func FDCount(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatalf("read /proc/self/fd: %v", err)
	}
	return len(ents)
}
