package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte { return []byte(l.String()) }

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// bgNetobs is a netobs process (or another command) running in the
// background.
type bgNetobs struct {
	cmd            *exec.Cmd
	stdout, stderr *lockedBuffer
	done           chan struct{}
	code           int
}

// startNetobs starts netobs with args; it is killed at the end of the test
// if still running.
func startNetobs(tb testing.TB, args ...string) *bgNetobs {
	tb.Helper()
	return startCmd(tb, exec.Command(netobsBin, args...))
}

// startCmd is startNetobs of a command prepared by the caller (netobs
// under a wrapper, in another environment, tcpdump). Its stdout goes to
// p.stdout unless the caller set cmd.Stdout.
func startCmd(tb testing.TB, cmd *exec.Cmd) *bgNetobs {
	tb.Helper()
	p := &bgNetobs{done: make(chan struct{}), cmd: cmd, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
	if p.cmd.Stdout == nil {
		p.cmd.Stdout = p.stdout
	}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", strings.Join(cmd.Args, " "), err)
	}
	go func() {
		p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitStderr waits until stderr matches re and returns the submatches.
func (p *bgNetobs) waitStderr(tb testing.TB, re string) []string {
	tb.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := rx.FindStringSubmatch(p.stderr.String()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := rx.FindStringSubmatch(p.stderr.String()); m != nil {
				return m
			}
			tb.Fatalf("%s exited %d before printing %q; stderr:\n%s", p.name(), p.code, re, p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	tb.Fatalf("%s did not print %q in 30s; stderr:\n%s", p.name(), re, p.stderr.String())
	return nil
}

// name is the command and its arguments, the binary's directory left out.
func (p *bgNetobs) name() string {
	return strings.Join(append([]string{filepath.Base(p.cmd.Path)}, p.cmd.Args[1:]...), " ")
}

// waitStdout waits until a line of stdout satisfies match and returns the
// last line that does; what names the line in a failure.
func (p *bgNetobs) waitStdout(tb testing.TB, what string, match func(line string) bool) string {
	tb.Helper()
	find := func() (string, bool) {
		var last string
		found := false
		for _, l := range strings.Split(p.stdout.String(), "\n") {
			if match(l) {
				last, found = l, true
			}
		}
		return last, found
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if l, ok := find(); ok {
			return l
		}
		select {
		case <-p.done:
			if l, ok := find(); ok {
				return l
			}
			tb.Fatalf("%s exited %d before printing %s; stdout:\n%s\nstderr:\n%s", p.name(), p.code, what, p.stdout.String(), p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	tb.Fatalf("%s did not print %s in 30s; stdout:\n%s", p.name(), what, p.stdout.String())
	return ""
}

// stop sends sig and waits for the exit status.
func (p *bgNetobs) stop(tb testing.TB, sig syscall.Signal) int {
	tb.Helper()
	p.cmd.Process.Signal(sig)
	return p.wait(tb)
}

func (p *bgNetobs) wait(tb testing.TB) int {
	tb.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		tb.Fatalf("netobs did not exit; stderr:\n%s", p.stderr.String())
		return -1
	}
}

// forwardAddr starts `netobs forward args...` and returns the process and
// the address it listens on, as its first stderr line says.
func startForward(tb testing.TB, args ...string) (*bgNetobs, string) {
	tb.Helper()
	p := startNetobs(tb, append([]string{"forward"}, args...)...)
	m := p.waitStderr(tb, `forward: (?:tcp|udp) (\S+) (?:on the host|in \S+) -> `)
	return p, m[1]
}

func osPID() int { return os.Getpid() }
