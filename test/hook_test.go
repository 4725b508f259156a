package test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest"
)

// TestNetobsIgnoresForgedHookEnvironment: netobs carries the exec hook, but
// a _NSJOIN_EXEC it did not make itself (the old instruction tokens, or
// FD:NONCE with fd 3 a regular file holding instructions) never makes it
// do anything but run its own main: same output, hostname and /proc.
func TestNetobsIgnoresForgedHookEnvironment(t *testing.T) {
	nstest.RequireRoot(t)
	args := []string{"ns", "id", "/proc/self/ns/uts", "/proc/self/ns/mnt", "/proc/self/ns/pid_for_children"}
	want := mustNetobs(t, args...)
	host, _ := os.Hostname()
	// A hook that obeyed "hNAME" would rename the host: put it back.
	t.Cleanup(func() {
		if h, _ := os.Hostname(); h != host {
			syscall.Sethostname([]byte(host))
		}
	})
	var procBefore syscall.Stat_t
	syscall.Stat("/proc", &procBefore)
	plain := filepath.Join(t.TempDir(), "instructions")
	os.WriteFile(plain, []byte("NSJ1"+strings.Repeat("\x00", 16)+"n24000000,hHIJACKED,p,f"), 0o644)
	nonce := strings.Repeat("0", 32)
	for _, v := range []string{"hHIJACKED", "n4000000,hHIJACKED", "n24020000,p,f", "jX:3", "j40000000:3", "p", "s2", "f",
		"3:" + nonce, "999:" + nonce, "3:" + nonce + ",hHIJACKED", "x"} {
		for _, withFile := range []bool{false, true} {
			cmd := exec.Command(netobsBin, args...)
			cmd.Env = append(os.Environ(), "_NSJOIN_EXEC="+v)
			if withFile {
				f, err := os.Open(plain)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				cmd.ExtraFiles = []*os.File{f}
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if err != nil || stdout.String() != want || stderr.Len() != 0 {
				t.Errorf("_NSJOIN_EXEC=%q (fd 3 a file: %v): %v, stdout %q stderr %q; want %q", v, withFile, err, stdout.String(), stderr.String(), want)
			}
		}
	}
	var procAfter syscall.Stat_t
	syscall.Stat("/proc", &procAfter)
	if h, _ := os.Hostname(); h != host || procAfter.Dev != procBefore.Dev {
		t.Errorf("hostname %q -> %q, /proc device %d -> %d", host, h, procBefore.Dev, procAfter.Dev)
	}
}

// TestNetobsRefusesSecureExec installs copies of netobs setuid root and
// with a file capability, and runs them as nobody from a directory nobody
// can read: each refuses with one line and exit 1, forged hook variable or
// not, and does nothing.
func TestNetobsRefusesSecureExec(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "setpriv", "setcap")
	// Reachable by nobody, unlike t.TempDir().
	bin, err := os.MkdirTemp("", "netobs-secure")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bin) })
	os.Chmod(bin, 0o755)
	data, err := os.ReadFile(netobsBin)
	if err != nil {
		t.Fatal(err)
	}
	setuid, withCap := filepath.Join(bin, "netobs-setuid"), filepath.Join(bin, "netobs-cap")
	for _, p := range []string{setuid, withCap} {
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(setuid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	nstest.Run(t, "setcap", "cap_sys_admin+ep", withCap)
	private := t.TempDir()
	os.Chmod(private, 0o700)
	named := nstest.NetNS(t)
	for _, prog := range []string{setuid, withCap} {
		for _, env := range []string{"", "_NSJOIN_EXEC=n4000000,hHIJACKED"} {
			cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", prog, "ns", "exec", "--net", named, "--", "echo", "HIJACKED")
			cmd.Dir = private
			cmd.Env = os.Environ()
			if env != "" {
				cmd.Env = append(cmd.Env, env)
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := cmd.ProcessState.ExitCode()
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if code != 1 || stdout.Len() != 0 || len(lines) != 1 || !strings.Contains(stderr.String(), "refusing to run setuid, setgid or with file capabilities") {
				t.Errorf("%s as nobody (%s): %v, stdout %q stderr %q; want exit 1 and one line refusing", filepath.Base(prog), env, err, stdout.String(), stderr.String())
			}
		}
	}
	// The same binary, not setuid, runs as nobody (and fails for want of
	// privilege, which shows the refusal above came from AT_SECURE).
	plain := filepath.Join(bin, "netobs")
	os.WriteFile(plain, data, 0o755)
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", plain, "ns", "id", "self").Output()
	if err != nil || !strings.HasPrefix(string(out), "self net:[") {
		t.Errorf("plain copy as nobody: %v %q", err, out)
	}
}

// TestNSExecWithoutCgo: a CGO_ENABLED=0 netobs says that ns exec and ns
// unshare need cgo, exit 1, instead of running anything.
func TestNSExecWithoutCgo(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "go")
	bin := filepath.Join(t.TempDir(), "netobs-nocgo")
	build := exec.Command("go", "build", "-o", bin, "github.com/netobs/netobs/cmd/netobs")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build without cgo: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"ns", "exec", "--net", "self", "--", "echo", "ran"}, {"ns", "unshare", "--uts", "--", "echo", "ran"}} {
		cmd := exec.Command(bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		if cmd.ProcessState.ExitCode() != 1 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "ns exec and ns unshare need cgo") ||
			!strings.Contains(stderr.String(), "CGO_ENABLED=0") || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("netobs (no cgo) %s: exit %d stdout %q stderr %q", strings.Join(args, " "), cmd.ProcessState.ExitCode(), stdout.String(), stderr.String())
		}
	}
}

// sigCounterEnv makes this test binary count signals instead of testing
// (see TestMain): it prints "ready", then "INT" for each SIGINT and "TERM"
// for each SIGTERM, and exits when stdin closes.
const sigCounterEnv = "NETOBS_TEST_SIGINT_COUNTER"

func sigCounter() {
	c := make(chan os.Signal, 16)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	fmt.Println("ready")
	eof := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(eof) }()
	for {
		select {
		case s := <-c:
			if s == syscall.SIGINT {
				fmt.Println("INT")
			} else {
				fmt.Println("TERM")
			}
		case <-eof:
			os.Exit(0)
		}
	}
}

// TestNSExecCtrlCOnce sends SIGINT to the whole process group of a netobs
// running ns exec or ns unshare (what the terminal does on Ctrl-C): the
// command must see it once, not once from the group and again from netobs
// and from the hook's process that waits for it in a new PID namespace.
// Then SIGTERM sent to netobs alone must reach the command, once.
func TestNSExecCtrlCOnce(t *testing.T) {
	nstest.RequireRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	named := nstest.NetNS(t)
	sleeper := strconv.Itoa(nstest.Sleeper(t, "--pid", "--fork", "--mount-proc", "-n"))
	for _, args := range [][]string{
		{"ns", "exec", "--net", named, "--", self},
		{"ns", "exec", "--pid", sleeper, "--", self},
		{"ns", "unshare", "--pid", "--fork", "--", self},
		{"ns", "unshare", "--uts", "--", self},
	} {
		cmd := exec.Command(netobsBin, args...)
		cmd.Env = append(os.Environ(), sigCounterEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() || lines.Text() != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("netobs %s: counter did not start: %q %s", strings.Join(args, " "), lines.Text(), stderr.String())
		}
		seen := map[string]int{}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		if lines.Scan() {
			seen[lines.Text()]++
		}
		// Any second copy is on its way by now.
		time.Sleep(300 * time.Millisecond)
		syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		for seen["TERM"] == 0 && lines.Scan() {
			seen[lines.Text()]++
		}
		time.Sleep(300 * time.Millisecond)
		stdin.Close()
		for lines.Scan() {
			seen[lines.Text()]++
		}
		err := cmd.Wait()
		if seen["INT"] != 1 || seen["TERM"] != 1 || err != nil {
			t.Errorf("netobs %s: the command saw SIGINT %d times and SIGTERM %d times, want once each (netobs: %v %s)",
				strings.Join(args, " "), seen["INT"], seen["TERM"], err, stderr.String())
		}
	}
}
