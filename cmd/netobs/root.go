package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// app is what every subcommand gets: its streams and the context that
// SIGINT and SIGTERM cancel.
type app struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// runtimeEndpoint is --runtime-endpoint (see target.go).
	runtimeEndpoint string
}

// commands holds the constructors of the top-level subcommands; each
// subcommand's file adds its own in an init function, so commands can be
// added without touching this file.
var commands []func(*app) *cobra.Command

func register(newCmd func(*app) *cobra.Command) { commands = append(commands, newCmd) }

// usageError marks a mistake in how netobs was called: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitStatus ends netobs with a given status and, if msg is not empty, a
// message: `ns same` exits 1 for "different", `ns exec` passes its
// command's status through.
type exitStatus struct {
	code int
	msg  string
}

func (e exitStatus) Error() string { return e.msg }

// run executes netobs with args and returns the exit status. Errors are
// printed as one line on stderr.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var st exitStatus
	if errors.As(err, &st) {
		if st.msg != "" {
			fmt.Fprintln(stderr, "netobs: "+oneLine(st.msg))
		}
		return st.code
	}
	fmt.Fprintln(stderr, "netobs: "+oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return 2
	}
	return 1
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "netobs",
		Short: "Observe Linux network namespaces from the outside",
		Long: `netobs enters a namespace on a locked OS thread, creates sockets, capture
sockets, netlink sockets and TUN/TAP devices there, returns the thread to
the host namespace and uses those file descriptors from the host.

Namespaces are named by NSREF: a path to a namespace file (/proc/PID/ns/net,
/run/netns/NAME), a PID, an 'ip netns' name, 'self', or a container:
docker:NAME|ID, podman:NAME|ID, container:ID (any runtime; IDs by unique
prefix).`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%s: %v (see %s --help)", c.CommandPath(), err, c.CommandPath())
	})
	addRuntimeFlags(root, a)
	for _, newCmd := range commands {
		root.AddCommand(newCmd(a))
	}
	return root
}

// isCobraUsage recognises the usage errors cobra makes itself (unknown
// command, wrong number of arguments).
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// oneLine keeps an error to the single line the CLI promises.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// exactArgs is cobra.ExactArgs with a usage error that says what is missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s needs %s (got %d arguments; see %s --help)", c.CommandPath(), what, len(args), c.CommandPath())
		}
		return nil
	}
}

// unknownSubcommand is the Args of commands that only group subcommands:
// cobra would otherwise print help for a mistyped subcommand and exit 0.
func unknownSubcommand(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unknown command %q for %s (see %s --help)", args[0], c.CommandPath(), c.CommandPath())
	}
	return nil
}
