package nsjoin_test

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/nsjoin"
	"golang.org/x/sys/unix"
)

// The main goroutine stays on the main thread, which the runtime cannot
// discard, as nsjoin asks of every program using it.
func init() { runtime.LockOSThread() }

func TestOpenNamedAndDo(t *testing.T) {
	name := nstest.NetNS(t)
	ns, err := nsjoin.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if ns.Type() != nsjoin.Net {
		t.Fatalf("type %v, want net", ns.Type())
	}
	// The inode must be what ip netns exec sees inside.
	link := strings.TrimSpace(nstest.Run(t, "ip", "netns", "exec", name, "readlink", "/proc/self/ns/net"))
	if link != ns.String() {
		t.Fatalf("ip netns exec readlink = %s, nsjoin says %s", link, ns.String())
	}
	var inside string
	err = ns.Do(func() error {
		var err error
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != ns.String() {
		t.Fatalf("inside Do the thread is in %s, want %s", inside, ns.String())
	}
	self, _ := nsjoin.Self(nsjoin.Net)
	defer self.Close()
	if nsjoin.Same(self, ns) {
		t.Fatal("Same(self, target) = true")
	}
	again, err := nsjoin.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if !nsjoin.Same(again, ns) {
		t.Fatal("Same(name, path) = false")
	}
	nstest.CheckThreads(t)
}

func TestOpenErrors(t *testing.T) {
	nstest.RequireRoot(t)
	regular := t.TempDir() + "/plain"
	os.WriteFile(regular, nil, 0o644)
	cases := []struct {
		ref  string
		typ  nsjoin.Type
		want error
		text string
	}{
		{regular, nsjoin.Net, nsjoin.ErrNotNamespace, "not a namespace file"},
		{"/proc/self/ns/uts", nsjoin.Net, nsjoin.ErrWrongType, "is a uts namespace, not net"},
		{"/nonexistent/ns", nsjoin.Net, os.ErrNotExist, "no such file"},
		{"999999999", nsjoin.Net, nsjoin.ErrNoProcess, "PID 999999999"},
		{"nosuchname-" + nstest.Prefix(), nsjoin.Net, nsjoin.ErrNotFound, "ip netns list"},
		{"somename", nsjoin.UTS, nsjoin.ErrWrongType, "names refer to network namespaces"},
		{"/proc", nsjoin.Net, nsjoin.ErrNotNamespace, "not a namespace file"},
	}
	for _, c := range cases {
		ns, err := nsjoin.OpenType(c.ref, c.typ)
		if err == nil {
			ns.Close()
			t.Errorf("OpenType(%q, %v) succeeded", c.ref, c.typ)
			continue
		}
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("OpenType(%q, %v) = %v; want %v containing %q", c.ref, c.typ, err, c.want, c.text)
		}
	}
}

func TestOpenPIDAndUTSDo(t *testing.T) {
	pid := nstest.Sleeper(t, "-u", "-n")
	uts, err := nsjoin.OpenType(itoa(pid), nsjoin.UTS)
	if err != nil {
		t.Fatal(err)
	}
	defer uts.Close()
	if !uts.ProcessAlive() {
		t.Fatal("ProcessAlive = false for a running sleeper")
	}
	want := "nsj" + nstest.Prefix()
	err = uts.Do(func() error { return unix.Sethostname([]byte(want)) })
	if err != nil {
		t.Fatal(err)
	}
	got := strings.TrimSpace(nstest.Run(t, "nsenter", "-t", itoa(pid), "-u", "hostname"))
	if got != want {
		t.Fatalf("hostname inside = %q, want %q", got, want)
	}
	own, _ := os.Hostname()
	if own == want {
		t.Fatal("the host's hostname changed")
	}
	link, _ := os.Readlink("/proc/" + itoa(pid) + "/ns/uts")
	if link != uts.String() {
		t.Fatalf("readlink = %s, nsjoin %s", link, uts)
	}
}

func TestDoRefusesOtherTypes(t *testing.T) {
	nstest.RequireRoot(t)
	for _, typ := range []nsjoin.Type{nsjoin.Mnt, nsjoin.User, nsjoin.PID, nsjoin.Cgroup, nsjoin.Time} {
		ns, err := nsjoin.Self(typ)
		if err != nil {
			t.Fatal(err)
		}
		err = ns.Do(func() error { return nil })
		ns.Close()
		if !errors.Is(err, nsjoin.ErrUnsupported) {
			t.Errorf("Do on %v: %v, want ErrUnsupported", typ, err)
		}
	}
}

func TestDoAfterClose(t *testing.T) {
	name := nstest.NetNS(t)
	ns, err := nsjoin.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	if err := ns.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := ns.Do(func() error { return nil }); !errors.Is(err, nsjoin.ErrClosed) {
		t.Fatalf("Do after Close: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestProcessAliveZombie: a process that has exited but is not reaped yet
// no longer counts as alive.
func TestProcessAliveZombie(t *testing.T) {
	nstest.RequireRoot(t)
	cmd := exec.Command("unshare", "-n", "sh", "-c", "read x")
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	var ns *nsjoin.NS
	var err error
	self, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; i < 2000; i++ {
		if link, _ := os.Readlink("/proc/" + itoa(cmd.Process.Pid) + "/ns/net"); link != "" && link != self {
			break
		}
		nstest.Sleep()
	}
	if ns, err = nsjoin.Open(itoa(cmd.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if !ns.ProcessAlive() {
		t.Fatal("ProcessAlive = false while the process runs")
	}
	stdin.Close() // sh exits; nobody reaps it until cmd.Wait
	for i := 0; i < 5000 && ns.ProcessAlive(); i++ {
		nstest.Sleep()
	}
	if ns.ProcessAlive() {
		t.Fatal("ProcessAlive = true for an exited (zombie) process")
	}
}

// TestGoneAndDup: Gone follows the reference a handle was opened by, and a
// duplicate keeps that reference and its process.
func TestGoneAndDup(t *testing.T) {
	name := nstest.NetNS(t)
	byName, err := nsjoin.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer byName.Close()
	pid := nstest.Sleeper(t, "-n")
	byPID, err := nsjoin.Open(itoa(pid))
	if err != nil {
		t.Fatal(err)
	}
	defer byPID.Close()
	dup, err := byPID.Dup()
	if err != nil {
		t.Fatal(err)
	}
	defer dup.Close()
	if dup.PID() != pid || dup.Ref() != byPID.Ref() || dup.PidFD() < 0 || dup.PidFD() == byPID.PidFD() || !nsjoin.Same(dup, byPID) {
		t.Fatalf("dup: pid %d ref %q pidfd %d; original pid %d ref %q pidfd %d", dup.PID(), dup.Ref(), dup.PidFD(), pid, byPID.Ref(), byPID.PidFD())
	}
	self, _ := nsjoin.Self(nsjoin.Net)
	defer self.Close()
	for _, ns := range []*nsjoin.NS{byName, byPID, dup, self} {
		if gone, why := ns.Gone(); gone {
			t.Fatalf("%s gone before anything happened: %s", ns.Ref(), why)
		}
	}
	nstest.Run(t, "ip", "netns", "del", name)
	if gone, why := byName.Gone(); !gone || !strings.Contains(why, "was removed") {
		t.Errorf("after ip netns del: Gone = %v, %q", gone, why)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 5000; i++ {
		if gone, _ := dup.Gone(); gone {
			break
		}
		nstest.Sleep()
	}
	if gone, why := dup.Gone(); !gone || why != "process "+itoa(pid)+" exited" {
		t.Errorf("after kill: Gone = %v, %q", gone, why)
	}
	if gone, _ := self.Gone(); gone {
		t.Error("self is gone")
	}
}
