package nstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// FDsTo returns how many of the process's file descriptors point at
// target, as readlink of /proc/self/fd/N shows it (for example
// "anon_inode:bpf-prog" or "anon_inode:[io_uring]").
func FDsTo(tb testing.TB, target string) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatalf("read /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == target {
			n++
		}
	}
	return n
}

// NonCloexec lists the open descriptors (by number and target) that lack
// close-on-exec, other than stdin, stdout and stderr. A test process
// inherits some from whatever started it; take this list before the code
// under test runs, and pass it to CheckCloexec.
func NonCloexec(tb testing.TB) map[string]bool {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fdinfo")
	if err != nil {
		tb.Fatalf("read /proc/self/fdinfo: %v", err)
	}
	found := map[string]bool{}
	for _, e := range ents {
		if fd, _ := strconv.Atoi(e.Name()); fd <= 2 {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue // closed meanwhile (the ReadDir's own descriptor)
		}
		for _, line := range strings.Split(string(info), "\n") {
			var flags int64
			if _, err := fmt.Sscanf(line, "flags:\t%o", &flags); err == nil && flags&0o2000000 == 0 {
				target, _ := os.Readlink("/proc/self/fd/" + e.Name())
				found[e.Name()+" ("+target+")"] = true
			}
		}
	}
	return found
}

// CheckCloexec fails the test for every descriptor that lacks
// close-on-exec now and was not in inherited (from NonCloexec): a
// descriptor netobs made must not leak into a child process.
func CheckCloexec(tb testing.TB, inherited map[string]bool) {
	tb.Helper()
	for fd := range NonCloexec(tb) {
		if !inherited[fd] {
			tb.Errorf("descriptor %s lacks close-on-exec", fd)
		}
	}
}
