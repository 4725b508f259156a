package nsjoin

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/netobs/netobs/internal/nstest"
	"golang.org/x/sys/unix"
)

// TestOriginalNSRetriesAfterFailure: one failure to open the process's own
// namespaces (EMFILE, injected on the second open) leaves nothing open and
// does not stick: the next Do works.
func TestOriginalNSRetriesAfterFailure(t *testing.T) {
	nstest.RequireRoot(t)
	ns, err := Self(Net)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	saved := origNS.fds.Swap(nil)
	real := openOwnNS
	t.Cleanup(func() {
		openOwnNS = real
		if fds := origNS.fds.Swap(saved); fds != nil && fds != saved {
			for _, typ := range []Type{Net, UTS, IPC} {
				unix.Close(fds[typ])
			}
		}
	})
	before := nstest.FDCount(t)
	var opens int
	openOwnNS = func(typ Type) (int, error) {
		if opens++; opens == 2 {
			return -1, os.NewSyscallError("open", unix.EMFILE)
		}
		return real(typ)
	}
	err = ns.Do(func() error { return nil })
	if !errors.Is(err, unix.EMFILE) {
		t.Fatalf("Do with the second open failing: %v, want EMFILE", err)
	}
	if n := nstest.FDCount(t); n != before {
		t.Fatalf("%d descriptors open after the failure, %d before: the first one leaked", n, before)
	}
	if err := ns.Do(func() error { return nil }); err != nil {
		t.Fatalf("Do after the failure cleared: %v", err)
	}
	if n := nstest.FDCount(t); n != before+3 {
		t.Fatalf("%d descriptors open after success, want %d (net, uts, ipc)", n, before+3)
	}
}

// TestGoneSeesReuseBetweenChecks: the process exits, and its PID is taken
// by another process in the same namespace, while Gone looks at /proc/PID:
// Gone must still say the process exited.
func TestGoneSeesReuseBetweenChecks(t *testing.T) {
	nstest.RequireRoot(t)
	a := exec.Command("sleep", "3600")
	b := exec.Command("sleep", "3600")
	for _, c := range []*exec.Cmd{a, b} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer func(c *exec.Cmd) { c.Process.Kill(); c.Wait() }(c)
	}
	ns, err := OpenType(strconv.Itoa(a.Process.Pid), Net)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	real := namesID
	t.Cleanup(func() { namesID = real })
	// Whichever check Gone makes at /proc/PID, the process exits around
	// it and /proc/PID then shows a process in the same namespace (b), as
	// a reused PID would.
	namesID = func(path string, id ID) bool {
		a.Process.Kill()
		a.Wait()
		return real("/proc/"+strconv.Itoa(b.Process.Pid)+"/ns/net", id)
	}
	if gone, why := ns.Gone(); !gone {
		t.Fatalf("Gone = false, %q after the process exited", why)
	}
}

// TestAfterClose: a closed handle says so, instead of "process exited" or
// EBADF.
func TestAfterClose(t *testing.T) {
	nstest.RequireRoot(t)
	pid := nstest.Sleeper(t, "-n")
	ns, err := OpenType(strconv.Itoa(pid), Net)
	if err != nil {
		t.Fatal(err)
	}
	user, err := Self(User)
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	user.Close()
	if gone, why := ns.Gone(); !gone || why != "the handle was closed" {
		t.Errorf("Gone after Close = %v, %q", gone, why)
	}
	if _, err := user.OwnerUID(); !errors.Is(err, ErrClosed) {
		t.Errorf("OwnerUID after Close: %v, want ErrClosed", err)
	}
}

// TestGoneWhileExiting: a process killed is reported as exited, never as
// having left its namespace, even when Gone looks while it is dying (its
// namespaces already released, its pidfd not yet readable).
func TestGoneWhileExiting(t *testing.T) {
	nstest.RequireRoot(t)
	for i := 0; i < 200; i++ {
		c := exec.Command("sleep", "3600")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		ns, err := OpenType(strconv.Itoa(c.Process.Pid), Net)
		if err != nil {
			c.Process.Kill()
			c.Wait()
			t.Fatal(err)
		}
		c.Process.Kill()
		gone, why := false, ""
		for !gone {
			gone, why = ns.Gone()
		}
		ns.Close()
		c.Wait()
		if want := "process " + strconv.Itoa(c.Process.Pid) + " exited"; why != want {
			t.Fatalf("run %d: Gone said %q, want %q", i, why, want)
		}
	}
}
