package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/netobs/netobs/internal/buildinfo"
	"github.com/netobs/netobs/internal/termsafe"
	"github.com/netobs/netobs/nsjoin"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
	// hostRoot is --host-root (see target.go).
	hostRoot string
}

// commands holds the constructors of the top-level subcommands; each
// subcommand's file adds its own in an init function, so commands can be
// added without touching this file.
var commands []func(*app) *cobra.Command

func register(newCmd func(*app) *cobra.Command) { commands = append(commands, newCmd) }

// usageError marks a mistake in how netobs was called (a bad flag, argument
// or NSREF syntax): exit status 2. Every other error exits 1, whatever its
// text says; run tells them apart with errors.As only.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usageErrorf is how commands report a usage mistake. Echo user input with
// %q (or termsafe.Quote), never raw, and start with the command's name
// without "netobs" ("ns add: ..."): run adds the one "netobs: " prefix.
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
// printed as one line on stderr, with one "netobs: " prefix.
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
	if isUsage(err) {
		return 2
	}
	return 1
}

// isUsage reports whether err is a mistake in how netobs was called: a
// usageError, or an NSREF or name that nsjoin refuses by its syntax alone
// (nsjoin.ErrInvalidName: "..", a NUL, too long). A well-formed NSREF that
// names nothing is a runtime failure (exit 1), as is every error from the
// kernel, whatever its text.
func isUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue) || errors.Is(err, nsjoin.ErrInvalidName)
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
prefix), or a pod through the CRI (containerd, CRI-O): cri:ID (pod sandbox
or container), pod:[NAMESPACE/]NAME, or containerd's own API:
containerd:[NAMESPACE/]ID (namespace default, nerdctl's, unless given;
k8s.io for Kubernetes'). A reference of digits only is always a PID, even if an 'ip netns'
name of those digits exists: name that one by its path, /run/netns/NAME.

The examples in each command's help run as written in the small lab
README.md builds: named namespaces lab1 and lab2 joined by veth1/veth2, and
a process $PID alone in namespaces of its own. Those that name containers
(docker:web, pod:default/web-*, -l app=web) need such containers.`,
		Version:       buildinfo.Version(),
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetVersionTemplate("netobs {{.Version}}\n")
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(flagError)
	addRuntimeFlags(root, a)
	for _, newCmd := range commands {
		root.AddCommand(newCmd(a))
	}
	for _, c := range root.Commands() {
		if n, ok := nsrefArgs[c.Name()]; ok && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = completeNSRefs(a, n)
		}
	}
	// Made now rather than by Execute, so that its mistakes are usage
	// errors like everyone else's.
	root.InitDefaultCompletionCmd()
	if comp, _, err := root.Find([]string{"completion"}); err == nil && comp != root {
		comp.Args = unknownSubcommand // cobra's NoArgs: help and exit 0
		for _, shell := range comp.Commands() {
			shell.Args = exactArgs(0, "no arguments")
		}
	}
	groupsOnly(root)
	return root
}

// nsrefArgs says which top-level commands take NSREFs, for shell
// completion: how many leading arguments are NSREFs (0: all of them).
// ns registers its own completion.
var nsrefArgs = map[string]int{"attach": 1, "capture": 0, "events": 0, "forward": 1, "sockets": 1}

// groupsOnly makes every command that only groups subcommands (netobs,
// ns, completion) refuse an unknown subcommand with a usage error instead
// of printing help and exiting 0, and print help when called bare.
func groupsOnly(c *cobra.Command) {
	if c.HasSubCommands() {
		if c.Args == nil {
			c.Args = unknownSubcommand
		}
		if !c.Runnable() {
			c.RunE = func(c *cobra.Command, args []string) error { return c.Help() }
		}
	}
	for _, sub := range c.Commands() {
		groupsOnly(sub)
	}
}

// flagError makes every flag parsing error a usage error naming the
// command once. A command can add a hint for an unknown flag with the
// annotation "flaghint:NAME" (NAME without dashes, one letter for -X).
func flagError(c *cobra.Command, err error) error {
	hint := ""
	var ne *pflag.NotExistError
	if errors.As(err, &ne) {
		if h := c.Annotations["flaghint:"+ne.GetSpecifiedName()]; h != "" {
			hint = "; " + h
		}
	}
	return usageError{fmt.Errorf("%s%w%s (see %s --help)", where(c), err, hint, c.CommandPath())}
}

// where is the command's name for messages, "ns ls: ", without the
// "netobs" that run prefixes every message with; "" for netobs itself.
func where(c *cobra.Command) string {
	if !c.HasParent() {
		return ""
	}
	return strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ") + ": "
}

// oneLine keeps an error to the single line the CLI promises: lines are
// joined with "; " and control characters escaped, so that no input quoted
// somewhere inside can garble the terminal.
func oneLine(s string) string {
	lines := strings.FieldsFunc(strings.TrimSpace(s), func(r rune) bool { return r == '\n' || r == '\r' })
	return termsafe.Escape(strings.Join(lines, "; "))
}

// exactArgs is cobra.ExactArgs with a usage error that says what is missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%sneeds %s (got %d arguments; see %s --help)", where(c), what, len(args), c.CommandPath())
		}
		return nil
	}
}

// unknownSubcommand is the Args of commands that only group subcommands:
// cobra would otherwise print help for a mistyped subcommand and exit 0.
func unknownSubcommand(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%sunknown command %q (see %s --help)", where(c), args[0], c.CommandPath())
	}
	return nil
}

// completeNSRefs completes the first n arguments (all when n is 0) as
// NSREFs and offers nothing after them.
func completeNSRefs(a *app, n int) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if n > 0 && len(args) >= n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return completeNSRef(a)(c, args, toComplete)
	}
}
