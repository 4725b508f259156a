package nsjoin_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/nsjoin"
	_ "github.com/netobs/netobs/nsjoin/exechook" // Command re-executes this test binary
)

// run starts c with its output captured and returns stdout and the exit status.
func runCmd(t *testing.T, c *nsjoin.Cmd) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	c.Cmd.Stdout, c.Cmd.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	err := c.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("wait: %v", err)
	}
	return out.String(), nsjoin.ExitCode(c.Cmd.ProcessState)
}

// TestCommandAllTypes joins every namespace of a process that has its own
// user, mount, pid, uts, ipc and net namespaces, and checks each link
// against the process's, as nsenter -t PID -a would.
func TestCommandAllTypes(t *testing.T) {
	pid := nstest.Sleeper(t, "--user", "--map-root-user", "--mount", "--pid", "--fork", "--uts", "--ipc", "--net")
	target := pid
	var nss []*nsjoin.NS
	types := []nsjoin.Type{nsjoin.User, nsjoin.Mnt, nsjoin.PID, nsjoin.UTS, nsjoin.IPC, nsjoin.Net}
	for _, typ := range types {
		ns, err := nsjoin.OpenType(strconv.Itoa(target), typ)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		nss = append(nss, ns)
	}
	script := "for t in user mnt pid_for_children uts ipc net; do readlink /proc/self/ns/$t; done; id -u"
	c, err := nsjoin.Command(nss, "sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	out, code := runCmd(t, c)
	if code != 0 {
		t.Fatalf("exit %d, output %q", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i, name := range []string{"user", "mnt", "pid", "uts", "ipc", "net"} {
		want, _ := os.Readlink("/proc/" + strconv.Itoa(target) + "/ns/" + name)
		if i >= len(lines) || lines[i] != want {
			t.Errorf("%s: command saw %q, target is in %s", name, lines, want)
		}
	}
	if lines[len(lines)-1] != "0" {
		t.Errorf("uid inside the user namespace = %s, want 0", lines[len(lines)-1])
	}
	// Cross-check with nsenter.
	ns, _ := strings.CutSuffix(nstest.Run(t, "nsenter", "-t", strconv.Itoa(target), "-a", "readlink", "/proc/self/ns/net"), "\n")
	if ns != lines[5] {
		t.Errorf("nsenter sees %s, netobs %s", ns, lines[5])
	}
	nstest.CheckThreads(t)
}

func TestCommandExitStatusAndErrors(t *testing.T) {
	name := nstest.NetNS(t)
	ns, err := nsjoin.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, _ := nsjoin.Command([]*nsjoin.NS{ns}, "sh", "-c", "exit 7")
	if _, code := runCmd(t, c); code != 7 {
		t.Fatalf("exit status %d, want 7", code)
	}
	c, _ = nsjoin.Command([]*nsjoin.NS{ns}, "sh", "-c", "kill -TERM $$")
	if _, code := runCmd(t, c); code != 128+15 {
		t.Fatalf("exit status %d, want 143", code)
	}
	c, _ = nsjoin.Command([]*nsjoin.NS{ns}, "/nonexistent/program")
	if err := c.Start(); err == nil || !strings.Contains(err.Error(), "exec /nonexistent/program") {
		t.Fatalf("Start of a missing program: %v", err)
	}
	if _, err := nsjoin.Command([]*nsjoin.NS{ns}); err == nil {
		t.Fatal("Command without argv succeeded")
	}
}

func TestUnshareHostname(t *testing.T) {
	nstest.RequireRoot(t)
	want := "uts" + nstest.Prefix()
	c, err := nsjoin.Unshare(nsjoin.UnshareOptions{Types: []nsjoin.Type{nsjoin.UTS}, Hostname: want}, "hostname")
	if err != nil {
		t.Fatal(err)
	}
	out, code := runCmd(t, c)
	if code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("hostname in new UTS namespace = %q (exit %d), want %q", out, code, want)
	}
	if h, _ := os.Hostname(); h == want {
		t.Fatal("the host's hostname changed")
	}
	if _, err := nsjoin.Unshare(nsjoin.UnshareOptions{Types: []nsjoin.Type{nsjoin.Net}, Hostname: "x"}, "true"); err == nil {
		t.Fatal("hostname without UTS accepted")
	}
}

func TestUnsharePIDMountProc(t *testing.T) {
	nstest.RequireRoot(t)
	c, err := nsjoin.Unshare(nsjoin.UnshareOptions{Types: []nsjoin.Type{nsjoin.PID}, MountProc: true}, "sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'")
	if err != nil {
		t.Fatal(err)
	}
	out, code := runCmd(t, c)
	f := strings.Fields(out)
	if code != 0 || len(f) != 2 || f[0] != "1" {
		t.Fatalf("in a new pid namespace: output %q exit %d, want PID 1", out, code)
	}
	if n, _ := strconv.Atoi(f[1]); n > 3 {
		t.Fatalf("new /proc shows %d processes, want only the shell and ls", n)
	}
}

func TestUnshareUserMapRoot(t *testing.T) {
	nstest.RequireRoot(t)
	c, err := nsjoin.Unshare(nsjoin.UnshareOptions{Types: []nsjoin.Type{nsjoin.User, nsjoin.Net, nsjoin.Time}, MapRootUser: true}, "sh", "-c", "id -u; cat /proc/self/uid_map")
	if err != nil {
		t.Fatal(err)
	}
	out, code := runCmd(t, c)
	f := strings.Fields(out)
	if code != 0 || len(f) < 4 || f[0] != "0" || f[1] != "0" || f[2] != strconv.Itoa(os.Getuid()) {
		t.Fatalf("map-root-user: output %q exit %d", out, code)
	}
}
