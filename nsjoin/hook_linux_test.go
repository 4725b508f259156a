package nsjoin_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/nsjoin"
	"github.com/netobs/netobs/nsjoin/internal/hookproto"
	"golang.org/x/sys/unix"
)

// buildProbes builds the test programs under testdata: nohook links nsjoin
// and netobs's packages without the exec hook, withhook links the hook.
func buildProbes(t *testing.T) (nohook, withhook string) {
	t.Helper()
	nstest.RequireTools(t, "go")
	dir := t.TempDir()
	for _, name := range []string{"nohook", "withhook"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), "./testdata/"+name).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	return filepath.Join(dir, "nohook"), filepath.Join(dir, "withhook")
}

// forgery is one way of starting a program with _NSJOIN_EXEC that Start
// did not make: the variable's value and what fd 3 is.
type forgery struct {
	name  string
	env   string
	fd3   func(t *testing.T) *os.File // nil: no fd 3
	viaSh bool                        // start through a shell, so the socket's maker is not the parent
}

func nonceHex() (string, [hookproto.NonceLen]byte) {
	var n [hookproto.NonceLen]byte
	rand.Read(n[:])
	return hex.EncodeToString(n[:]), n
}

// hijack is what a forged start would do if the hook obeyed: a new UTS
// namespace with another hostname and a fresh /proc, then exec argv.
var hijack = hookproto.Spec{Unshare: unix.CLONE_NEWUTS | unix.CLONE_NEWNS | unix.CLONE_NEWPID, Hostname: "hijacked", MountProc: true, Fork: true}

// socketWith returns the child's end of a socket pair holding msg.
func socketWith(t *testing.T, msg []byte) *os.File {
	t.Helper()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(pair[0], msg); err != nil {
		t.Fatal(err)
	}
	ours := os.NewFile(uintptr(pair[0]), "ours")
	t.Cleanup(func() { ours.Close() })
	theirs := os.NewFile(uintptr(pair[1]), "theirs")
	t.Cleanup(func() { theirs.Close() })
	return theirs
}

func forgeries(t *testing.T) []forgery {
	good, nonce := nonceHex()
	_, other := nonceHex()
	regular := func(t *testing.T) *os.File {
		f, err := os.CreateTemp(t.TempDir(), "plain")
		if err != nil {
			t.Fatal(err)
		}
		f.Write(hijack.Message(nonce))
		f.Seek(0, 0)
		t.Cleanup(func() { f.Close() })
		return f
	}
	pipe := func(t *testing.T) *os.File {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		w.Write(hijack.Message(nonce))
		w.Close()
		t.Cleanup(func() { r.Close() })
		return r
	}
	stream := func(t *testing.T) *os.File {
		pair, _ := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		unix.Write(pair[0], hijack.Message(nonce))
		a, b := os.NewFile(uintptr(pair[0]), "a"), os.NewFile(uintptr(pair[1]), "b")
		t.Cleanup(func() { a.Close(); b.Close() })
		return b
	}
	wrongNonce := func(t *testing.T) *os.File { return socketWith(t, hijack.Message(other)) }
	rightNonce := func(t *testing.T) *os.File { return socketWith(t, hijack.Message(nonce)) }
	var out []forgery
	// The old token syntax, and other values without a socket.
	for _, v := range []string{"", "x", "hHIJACKED", "hHIJACKED,n4000000", "jX:3", "j40000000:3", "p", "s2", "f",
		"n20000000", "n4000000,p,f", "m0:0,n10000000", "3", "3:", "3:" + good, "999:" + good, "-1:" + good,
		"3:" + strings.ToUpper(good), "03:" + good, "3:" + good + "0", strings.Repeat("A", 10000)} {
		out = append(out, forgery{name: "value " + truncate(v), env: v})
	}
	out = append(out,
		forgery{"regular file holding the message", "3:" + good, regular, false},
		forgery{"pipe holding the message", "3:" + good, pipe, false},
		forgery{"stream socket holding the message", "3:" + good, stream, false},
		forgery{"socket with another nonce", "3:" + good, wrongNonce, false},
		forgery{"socket made by a grandparent", "3:" + good, rightNonce, true},
	)
	return out
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// runProbe runs a probe with argv "echo HIJACKED" and the forgery, and
// returns its output and exit status.
func runProbe(t *testing.T, prog string, f *forgery) (string, int) {
	t.Helper()
	cmd := exec.Command(prog, "echo", "HIJACKED")
	if f != nil && f.viaSh {
		// The shell forks the probe, so the socket's maker (this test) is
		// its grandparent, not its parent.
		cmd = exec.Command("sh", "-c", `"$0" "$@"; exit $?`, prog, "echo", "HIJACKED")
	}
	cmd.Env = os.Environ()
	if f != nil {
		cmd.Env = append(cmd.Env, hookproto.Env+"="+f.env)
		if f.fd3 != nil {
			cmd.ExtraFiles = []*os.File{f.fd3(t)}
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		t.Logf("%s: %v: %s", prog, err, stderr.String())
	}
	return stdout.String(), cmd.ProcessState.ExitCode()
}

// TestHookIgnoresForgedEnvironment starts a program that links nsjoin
// without the hook and one that links the hook, with every kind of forged
// _NSJOIN_EXEC: the old instruction tokens, FD:NONCE forms whose fd is
// closed, a regular file, a pipe, a stream socket, a socket with another
// nonce or bad instructions, and a socket made by a process other than the
// parent. Each time the program's own main runs, with the same hostname,
// namespaces and /proc, and the variable removed where the hook is linked.
// A control run with the socket, nonce and parent right shows that the
// hook would have acted on a forgery that got them right.
func TestHookIgnoresForgedEnvironment(t *testing.T) {
	nstest.RequireRoot(t)
	nohook, withhook := buildProbes(t)
	// A hook that obeyed "hNAME" would rename the host: put it back.
	host, _ := os.Hostname()
	t.Cleanup(func() {
		if h, _ := os.Hostname(); h != host {
			unix.Sethostname([]byte(host))
		}
	})
	want := map[string]string{}
	for _, prog := range []string{nohook, withhook} {
		out, code := runProbe(t, prog, nil)
		if code != 0 || !strings.HasPrefix(out, "main ran\n") {
			t.Fatalf("%s without the variable: exit %d, output %q", prog, code, out)
		}
		want[prog] = out
	}
	if !strings.Contains(want[nohook], "Unshare: unshare uts: the exec hook is not linked in: import _ \"github.com/netobs/netobs/nsjoin/exechook\"") ||
		!strings.HasSuffix(want[nohook], " true\n") {
		t.Errorf("Unshare in a program without the hook: %q, want ErrHookNotLinked naming the package", want[nohook])
	}
	if !strings.HasSuffix(want[withhook], "Unshare: <nil> false\n") {
		t.Errorf("Unshare in a program with the hook: %q, want it to work", want[withhook])
	}
	for _, f := range forgeries(t) {
		for _, prog := range []string{nohook, withhook} {
			out, code := runProbe(t, prog, &f)
			got := out
			if prog == nohook {
				// Without the hook nothing removes the variable; that is all.
				got = strings.Replace(got, "_NSJOIN_EXEC set: true", "_NSJOIN_EXEC set: false", 1)
			}
			if code != 0 || got != want[prog] {
				t.Errorf("%s with %s: exit %d, output\n%s\nwant\n%s", filepath.Base(prog), f.name, code, out, want[prog])
			}
		}
	}
	if h, _ := os.Hostname(); h != host {
		t.Errorf("the host's hostname changed to %q", h)
	}

	// Control: the same message with the socket, nonce and parent right.
	good, nonce := nonceHex()
	f := forgery{name: "control", env: "3:" + good, fd3: func(t *testing.T) *os.File {
		return socketWith(t, hookproto.Spec{Unshare: unix.CLONE_NEWUTS, Hostname: "hijacked"}.Message(nonce))
	}}
	cmd := exec.Command(withhook, "hostname")
	cmd.Env = append(os.Environ(), hookproto.Env+"="+f.env)
	cmd.ExtraFiles = []*os.File{f.fd3(t)}
	out, err := cmd.Output()
	if err != nil || string(out) != "hijacked\n" {
		t.Fatalf("control: the hook did not act on a well-formed start: %v %q", err, out)
	}
	out, _ = exec.Command(nohook, "hostname").Output()
	if !strings.HasPrefix(string(out), "main ran\n") {
		t.Fatalf("control without the hook: %q", out)
	}
}

// TestHookExtraFilesKept: the caller's ExtraFiles stay at fds 3, 4, ... in
// the command, as with os/exec; the namespace files and the hook's socket
// follow and are closed before the command runs.
func TestHookExtraFilesKept(t *testing.T) {
	nstest.RequireRoot(t)
	r1, w1, _ := os.Pipe()
	r2, w2, _ := os.Pipe()
	defer r1.Close()
	defer r2.Close()
	self, err := nsjoin.Self(nsjoin.Net)
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	c, err := nsjoin.Command([]*nsjoin.NS{self}, "sh", "-c", "echo three >&3; echo four >&4; ls -l /proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	c.Cmd.ExtraFiles = []*os.File{w1, w2}
	out, code := runCmd(t, c)
	w1.Close()
	w2.Close()
	if len(c.Cmd.ExtraFiles) != 2 || c.Cmd.ExtraFiles[0] != w1 || c.Cmd.ExtraFiles[1] != w2 {
		t.Errorf("Start changed the caller's ExtraFiles: %v", c.Cmd.ExtraFiles)
	}
	b1, _ := readAll(r1)
	b2, _ := readAll(r2)
	if code != 0 || b1 != "three\n" || b2 != "four\n" {
		t.Fatalf("ExtraFiles in the command: fd 3 got %q, fd 4 got %q (exit %d)", b1, b2, code)
	}
	// Whatever else this test process lets its children inherit, the
	// namespace file and the hook's socket must not reach the command.
	if strings.Contains(out, "net:[") || strings.Contains(out, "socket:[") {
		t.Errorf("the namespace file or the hook's socket reached the command: %s", out)
	}
}

func readAll(f *os.File) (string, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(f)
	return b.String(), err
}

// TestHookRefusesATSecure: under AT_SECURE (here a setuid-root copy run by
// nobody) the hook ignores even a well-formed start from its parent, and
// the program's own main runs; the same start of a plain copy reaches the
// hook (which then lacks the privilege to unshare).
func TestHookRefusesATSecure(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "setpriv")
	_, withhook := buildProbes(t)
	dir, err := os.MkdirTemp("", "nsjoin-secure")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	data, err := os.ReadFile(withhook)
	if err != nil {
		t.Fatal(err)
	}
	setuid, plain := filepath.Join(dir, "setuid"), filepath.Join(dir, "plain")
	for _, p := range []string{setuid, plain} {
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(setuid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	run := func(prog string) (string, int) {
		good, nonce := nonceHex()
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", prog, "hostname")
		cmd.Dir = "/"
		cmd.Env = append(os.Environ(), hookproto.Env+"=3:"+good)
		cmd.ExtraFiles = []*os.File{socketWith(t, hookproto.Spec{Unshare: unix.CLONE_NEWUTS, Hostname: "hijacked"}.Message(nonce))}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Run()
		return out.String(), cmd.ProcessState.ExitCode()
	}
	if out, code := run(setuid); !strings.HasPrefix(out, "main ran\n") || strings.Contains(out, "hijacked") {
		t.Errorf("setuid copy with a well-formed start: exit %d, output %q; want its own main", code, out)
	}
	if out, code := run(plain); code != 125 || strings.HasPrefix(out, "main ran") {
		t.Errorf("plain copy with a well-formed start, as nobody: exit %d, output %q; want the hook's failure to unshare (125)", code, out)
	}
}
