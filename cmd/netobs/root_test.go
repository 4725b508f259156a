package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"
)

// runArgs runs netobs in-process and returns its exit status and output.
func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestUsageErrors: mistakes in how netobs is called exit 2 with one line
// that says "netobs: " once and names the command without repeating it.
func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ns", "ls", "--bogus"}, "netobs: ns ls: unknown flag: --bogus (see netobs ns ls --help)"},
		{[]string{"--bogus"}, "netobs: unknown flag: --bogus (see netobs --help)"},
		{[]string{"bogus"}, `netobs: unknown command "bogus" (see netobs --help)`},
		{[]string{"ns", "bogus"}, `netobs: ns: unknown command "bogus" (see netobs ns --help)`},
		{[]string{"completion", "frob"}, `netobs: completion: unknown command "frob" (see netobs completion --help)`},
		{[]string{"completion", "bash", "extra"}, "netobs: completion bash: needs no arguments"},
		{[]string{"ns", "id"}, "netobs: ns id: needs at least one NSREF"},
		{[]string{"ns", "same", "self"}, "netobs: ns same: needs two NSREFs"},
		{[]string{"ns", "ls", "extra"}, "netobs: ns ls: needs no arguments"},
		{[]string{"sockets"}, "netobs: sockets: needs NSREF"},
		{[]string{"ns", "ls", "--type"}, "netobs: ns ls: flag needs an argument: --type"},
		{[]string{"events", "--count", "x"}, `netobs: events: invalid argument "x" for "-c, --count" flag`},
		// -t is --target (ns exec), as in nsenter: not --type.
		{[]string{"ns", "id", "-t", "1"}, "netobs: ns id: unknown shorthand flag: 't' in -t; --type has no short form (-t is --target, of ns exec)"},
		{[]string{"ns", "same", "-t", "uts", "1", "self"}, "--type has no short form"},
		{[]string{"ns", "ls", "-t", "net"}, "--type has no short form"},
		// NSREFs and names that cannot name anything, by their syntax.
		{[]string{"ns", "id", ".."}, `open ..: invalid namespace name ".."`},
		{[]string{"sockets", strings.Repeat("n", 256)}, "invalid namespace name: 256 bytes"},
		{[]string{"ns", "del", "."}, "invalid namespace name"},
	} {
		code, _, stderr := runArgs(t, c.args...)
		if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.want) ||
			strings.HasPrefix(stderr, "netobs: netobs") {
			t.Errorf("netobs %s: exit %d, stderr %q; want exit 2 and one line with %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}

// TestRuntimeErrorIsNotUsage: an error from the kernel whose text says
// "invalid argument" (EINVAL) is a runtime failure, exit 1, not a usage
// error; only the error's type decides. (test/cli_test.go provokes a real
// EINVAL from the kernel through the binary.)
func TestRuntimeErrorIsNotUsage(t *testing.T) {
	saved := commands
	t.Cleanup(func() { commands = saved })
	register(func(*app) *cobra.Command {
		return &cobra.Command{Use: "einval", RunE: func(*cobra.Command, []string) error {
			return fmt.Errorf("einval: %w", os.NewSyscallError("bind", syscall.EINVAL))
		}}
	})
	code, _, stderr := runArgs(t, "einval")
	if code != 1 || stderr != "netobs: einval: bind: invalid argument\n" {
		t.Errorf("exit %d, stderr %q; want exit 1 and the error", code, stderr)
	}
	// The same text as a usage error is one.
	register(func(*app) *cobra.Command {
		return &cobra.Command{Use: "usage", RunE: func(*cobra.Command, []string) error {
			return usageErrorf("usage: --x: invalid argument")
		}}
	})
	if code, _, _ := runArgs(t, "usage"); code != 2 {
		t.Errorf("usage error: exit %d, want 2", code)
	}
}

// TestErrorOneLineEscaped: whatever an error holds, stderr gets one line
// without raw control characters.
func TestErrorOneLineEscaped(t *testing.T) {
	saved := commands
	t.Cleanup(func() { commands = saved })
	register(func(*app) *cobra.Command {
		return &cobra.Command{Use: "evil", RunE: func(*cobra.Command, []string) error {
			return fmt.Errorf("open %s: first\nsecond\x1b[2J", "\x1b[31m")
		}}
	})
	code, _, stderr := runArgs(t, "evil")
	if want := `netobs: open \x1b[31m: first; second\x1b[2J` + "\n"; code != 1 || stderr != want {
		t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := runArgs(t, "--version")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "netobs ") ||
		!strings.HasSuffix(stdout, " "+runtime.Version()+"\n") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("--version: exit %d, stdout %q, stderr %q; want one line: netobs VERSION ... %s", code, stdout, stderr, runtime.Version())
	}
}

// TestHelpNoShortType: help shows --type without -t, and ns exec's -t as
// --target.
func TestHelpNoShortType(t *testing.T) {
	for _, cmd := range []string{"ls", "id", "same"} {
		_, stdout, _ := runArgs(t, "ns", cmd, "--help")
		if !strings.Contains(stdout, "--type") || strings.Contains(stdout, "-t,") {
			t.Errorf("ns %s --help: want --type without -t:\n%s", cmd, stdout)
		}
	}
	if _, stdout, _ := runArgs(t, "ns", "exec", "--help"); !strings.Contains(stdout, "-t, --target") {
		t.Errorf("ns exec --help: want -t, --target:\n%s", stdout)
	}
}
