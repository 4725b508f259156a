package nsjoin_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/nsjoin"
)

// threadInNewUTS starts a process one of whose threads is in a new UTS
// namespace and returns the process's PID and that thread's ID.
func threadInNewUTS(t *testing.T) (pid, tid int) {
	t.Helper()
	nohook, _ := buildProbes(t)
	cmd := exec.Command(nohook, "-thread-in-new-uts")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	tid, err2 := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || err2 != nil {
		t.Fatalf("probe printed %q: %v %v", line, err, err2)
	}
	return cmd.Process.Pid, tid
}

// TestOpenThreadID: a thread ID names that thread's namespaces, as with
// nsenter -t TID, and its pidfd tells when the thread is gone.
func TestOpenThreadID(t *testing.T) {
	nstest.RequireRoot(t)
	pid, tid := threadInNewUTS(t)
	ns, err := nsjoin.OpenType(strconv.Itoa(tid), nsjoin.UTS)
	if err != nil {
		t.Fatalf("open thread %d of %d: %v", tid, pid, err)
	}
	defer ns.Close()
	want, _ := os.Readlink("/proc/" + strconv.Itoa(tid) + "/ns/uts")
	proc, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/uts")
	if ns.String() != want || want == proc {
		t.Fatalf("thread %d: nsjoin says %s, the thread is in %s, its process in %s", tid, ns, want, proc)
	}
	if gone, why := ns.Gone(); gone || !ns.ProcessAlive() {
		t.Fatalf("a live thread: Gone = %v %q, ProcessAlive = %v", gone, why, ns.ProcessAlive())
	}
	if _, err := nsjoin.OpenType("99999999", nsjoin.UTS); !errors.Is(err, nsjoin.ErrNoProcess) || strings.Contains(err.Error(), "pidfd_open") {
		t.Fatalf("a PID nobody has: %v", err)
	}
}
