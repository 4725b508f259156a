// Package nstest has helpers for tests that need real namespaces: names
// unique to the test run, `ip netns` namespaces and veth pairs that are
// removed when the test ends, and checks for root and tools that fail
// rather than skip under CI=true (a skipped suite proves nothing).
package nstest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true), where a missing
// privilege or tool is a failure, not a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable fails the test under CI and skips it otherwise, with msg
// naming the fix.
func Unavailable(tb testing.TB, msg string) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("%s (CI=true: failing instead of skipping)", msg)
	}
	tb.Skip(msg)
}

// RequireRoot stops the test unless it runs as root.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Unavailable(tb, "needs root for namespaces: run as root (sudo make test)")
	}
}

// RequireTools stops the test unless every tool is on PATH.
func RequireTools(tb testing.TB, tools ...string) {
	tb.Helper()
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			Unavailable(tb, fmt.Sprintf("needs %s on PATH: install it with make deps", t))
		}
	}
}

var (
	runPrefix = fmt.Sprintf("nt%d", os.Getpid()%100000)
	counter   atomic.Int64
)

// UniqueName returns a name unique to this test run, short enough for an
// interface name (IFNAMSIZ) when kind is at most 3 bytes.
func UniqueName(kind string) string {
	return fmt.Sprintf("%s%s%d", runPrefix, kind, counter.Add(1))
}

// Prefix is the prefix of every name UniqueName returns in this run.
func Prefix() string { return runPrefix }

// Run runs a command and fails the test if it fails, returning its
// standard output.
func Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := Output(name, args...)
	if err != nil {
		tb.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

// Output runs a command and returns its standard output; the error
// includes its standard error.
func Output(name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// NetNS makes a named network namespace with `ip netns add`, brings its
// loopback up and deletes it when the test ends. It returns the name.
func NetNS(tb testing.TB) string {
	tb.Helper()
	RequireRoot(tb)
	RequireTools(tb, "ip")
	name := UniqueName("ns")
	Run(tb, "ip", "netns", "add", name)
	tb.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	Run(tb, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Veth joins two named namespaces with a veth pair, gives the ends the
// addresses addrA and addrB (CIDR) and brings them up. It returns the
// interface names. The pair goes away with the namespaces.
func Veth(tb testing.TB, nsA, addrA, nsB, addrB string) (ifA, ifB string) {
	tb.Helper()
	ifA, ifB = UniqueName("va"), UniqueName("vb")
	Run(tb, "ip", "link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	Run(tb, "ip", "-n", nsA, "addr", "add", addrA, "dev", ifA)
	Run(tb, "ip", "-n", nsB, "addr", "add", addrB, "dev", ifB)
	Run(tb, "ip", "-n", nsA, "link", "set", ifA, "up")
	Run(tb, "ip", "-n", nsB, "link", "set", ifB, "up")
	return ifA, ifB
}

// Sleeper starts `unshare FLAGS sleep` (default -n: a process alone in a
// new network namespace that no name holds) and kills it when the test
// ends. It returns the PID of sleep (unshare's child with --fork).
func Sleeper(tb testing.TB, unshareFlags ...string) int {
	tb.Helper()
	RequireRoot(tb)
	RequireTools(tb, "unshare", "sleep")
	if len(unshareFlags) == 0 {
		unshareFlags = []string{"-n"}
	}
	cmd := exec.Command("unshare", append(unshareFlags, "sleep", "3600")...)
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start unshare sleep: %v", err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// unshare execs sleep in place, or with --fork runs it as its child:
	// wait until that process is sleep, in its own namespaces.
	self, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; i < 5000; i++ {
		pid := cmd.Process.Pid
		if contains(unshareFlags, "--fork") || contains(unshareFlags, "-f") {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
			if f := strings.Fields(string(b)); len(f) == 1 {
				fmt.Sscan(f[0], &pid)
			}
		}
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.TrimSpace(string(comm)) == "sleep" && (link != self || !contains(unshareFlags, "-n") && !contains(unshareFlags, "--net")) {
			if pid != cmd.Process.Pid {
				// unshare does not kill its child when it dies.
				tb.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
			}
			return pid
		}
		sleepBriefly()
	}
	tb.Fatalf("unshare %v did not become sleep", unshareFlags)
	return 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
