package main

import (
	"strings"
	"testing"

	"github.com/netobs/netobs/netobs/runtime"
	"github.com/spf13/cobra"
)

// labPID stands for the lab's $PID, as the shell expands it.
const labPID = "424242"

// labRefs are the namespaces README.md's lab makes, which the examples in
// every command's help name.
var labRefs = map[string]bool{"lab1": true, "lab2": true, labPID: true, "self": true, "/proc/" + labPID + "/ns/net": true}

// labIfaces are the lab's interfaces.
var labIfaces = map[string]bool{"veth1": true, "veth2": true, "lo": true, "any": true}

// splitShell splits a shell command line into words: spaces separate,
// single and double quotes group; it stops at a comment, a pipe or &&/||
// (what follows runs other commands).
func splitShell(line string) []string {
	var words []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '#' && !in, c == '|', c == '&':
			i = len(line)
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// TestHelpExamplesRunInTheLab: every example in every command's help is a
// valid call (known command and flags, the arguments its Args accepts)
// that names only what README.md's lab makes (lab1, lab2, the process
// $PID, veth1/veth2) or a container reference, so that it runs as written
// after the lab's set-up.
func TestHelpExamplesRunInTheLab(t *testing.T) {
	root := newRootCmd(&app{})
	var n int
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		for _, line := range strings.Split(c.Example, "\n") {
			words := splitShell(strings.TrimSpace(line))
			if len(words) == 0 {
				continue
			}
			n++
			if words[0] != "netobs" {
				t.Errorf("%s: example %q does not start with netobs", c.CommandPath(), line)
				continue
			}
			for i, w := range words {
				words[i] = strings.ReplaceAll(w, "$PID", labPID)
			}
			checkExample(t, newRootCmd(&app{}), line, words[1:])
		}
	}
	walk(root)
	if n < 30 {
		t.Fatalf("only %d examples found", n)
	}
}

func checkExample(t *testing.T, root *cobra.Command, line string, args []string) {
	t.Helper()
	c, rest, err := root.Find(args)
	if err != nil || c == root {
		t.Errorf("example %q: no such command: %v", line, err)
		return
	}
	if err := c.ParseFlags(rest); err != nil {
		t.Errorf("example %q: %v", line, err)
		return
	}
	pos := c.Flags().Args()
	if c.Args != nil {
		if err := c.Args(c, pos); err != nil {
			t.Errorf("example %q: %v", line, err)
		}
	}
	ref := func(what, s string) {
		if !labRefs[s] && !runtime.IsRef(s) {
			t.Errorf("example %q: %s %q is not in the README lab (lab1, lab2, $PID, /proc/$PID/ns/net, self) nor a container", line, what, s)
		}
	}
	// The NSREF arguments: leading ones, up to "--" where that ends them.
	refs := 0
	switch c.CommandPath() {
	case "netobs capture", "netobs events", "netobs topo", "netobs ns id":
		refs = len(pos)
		if d := c.Flags().ArgsLenAtDash(); d >= 0 {
			refs = d
		}
	case "netobs attach", "netobs forward", "netobs sockets":
		refs = min(1, len(pos))
	case "netobs ns same":
		refs = len(pos)
	}
	for _, p := range pos[:refs] {
		ref("NSREF", p)
	}
	if c.CommandPath() == "netobs ns exec" {
		for _, f := range []string{"net", "uts", "ipc", "mnt", "pid", "user", "cgroup", "time", "target"} {
			if fl := c.Flags().Lookup(f); fl != nil && fl.Changed {
				ref("--"+f, fl.Value.String())
			}
		}
	}
	if c.CommandPath() == "netobs ns add" && len(pos) > 0 && labRefs[pos[0]] {
		t.Errorf("example %q: the lab already has %s", line, pos[0])
	}
	for _, f := range []string{"interface", "mirror"} {
		if fl := c.Flags().Lookup(f); fl != nil && fl.Changed {
			for _, i := range strings.Split(strings.Trim(fl.Value.String(), "[]"), ",") {
				if !labIfaces[i] {
					t.Errorf("example %q: interface %q is not in the README lab", line, i)
				}
			}
		}
	}
}
