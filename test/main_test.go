package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/netobs/netobs/internal/ctrtest"
)

func init() { runtime.LockOSThread() }

// netobsBin is the netobs binary built for this test run.
var netobsBin string

func TestMain(m *testing.M) {
	if os.Getenv(sigCounterEnv) != "" {
		sigCounter()
	}
	dir, err := os.MkdirTemp("", "netobs-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by all: the capability tests run it as an unprivileged user.
	os.Chmod(dir, 0o755)
	netobsBin = filepath.Join(dir, "netobs")
	build := exec.Command("go", "build", "-o", netobsBin, "github.com/netobs/netobs/cmd/netobs")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build netobs:", err)
		os.Exit(1)
	}
	code := m.Run()
	ctrtest.Shutdown()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a netobs run produced.
type result struct {
	stdout, stderr string
	code           int
}

// netobs runs the binary with args and returns its output and exit status.
func netobs(tb testing.TB, args ...string) result {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(netobsBin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			tb.Fatalf("run netobs %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return result{stdout.String(), stderr.String(), code}
}

// mustNetobs runs netobs and fails the test unless it exits 0.
func mustNetobs(tb testing.TB, args ...string) string {
	tb.Helper()
	r := netobs(tb, args...)
	if r.code != 0 {
		tb.Fatalf("netobs %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}
