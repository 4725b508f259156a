package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/netobs/netobs/internal/termsafe"
	"github.com/netobs/netobs/netobs/topo"
	"github.com/spf13/cobra"
)

func init() { register(newTopoCmd) }

func newTopoCmd(a *app) *cobra.Command {
	var (
		all       bool
		format    string
		outFile   string
		selector  string
		agentAddr string
	)
	cmd := &cobra.Command{
		Use:   "topo [NSREF...] [-l SELECTOR] | --all",
		Short: "Draw network namespaces, their interfaces and the links between them",
		Long: `topo shows the namespace graph: every network namespace (with its ip-netns
names, or a process in it), its interfaces (kind, state, MTU, MAC, addresses,
master, physical device), and what joins them: veth pairs (across namespaces),
bridge and bond ports, VLAN/macvlan/ipvlan devices on their parents, and the
processes holding TUN/TAP devices open.

With NSREFs it draws those namespaces (a pod glob in quotes,
'pod:default/web-*', and -l SELECTOR on the runtimes' labels expand to every
running match); without, or with --all, every network namespace on the
system. A peer in a namespace that is not drawn is named
(eth0@lab2) but gets no edge.

Formats (--format):
  text  an indented tree per namespace, ports under their master, veth peers
        as "veth0 ⇄ eth0@lab2", parents as "on eth0@host", TAP holders as
        "held by qemu[1234]"
  json  one object {"nodes":[...],"edges":[...]}; nodes have a type
        (namespace, interface, process) and an id edges refer to; edge
        kinds are veth, port (to the master), parent, owner
  dot   Graphviz source: render with 'dot -Tpng'
  svg   rendered by Graphviz's dot program (package graphviz), which must be
        on PATH

Names from inside namespaces (interfaces, processes) are escaped for the
terminal in text, and quoted so that Graphviz shows them as text in dot and
svg. Needs root (CAP_SYS_ADMIN to enter namespaces, CAP_SYS_PTRACE to see
other users' processes and their TUN/TAP descriptors).

With --agent ADDR (a unix socket path, or HOST:PORT) the graph is read on
the host of that netobs agent (see netobs agent --help) and drawn here.`,
		Example: `  netobs topo
  netobs topo lab1 lab2
  netobs topo --all --format json
  netobs topo --format svg -o topo.svg
  netobs topo 'pod:default/web-*' -l app=db`,
		ValidArgsFunction: completeNSRefs(a, 0),
		RunE: func(c *cobra.Command, args []string) error {
			f, err := topo.ParseFormat(format)
			if err != nil {
				return usageErrorf("topo: --format: %v", err)
			}
			if all && (len(args) > 0 || selector != "") {
				return usageErrorf("topo: --all draws every namespace; give it no NSREF or -l (got %s)", termsafe.Quote(strings.TrimSpace(strings.Join(args, " ")+" "+selector)))
			}
			opts := topo.Options{All: len(args) == 0 && selector == "", HostRoot: a.hostRoot}
			defer func() {
				for _, ns := range opts.Namespaces {
					ns.Close()
				}
			}()
			var g *topo.Graph
			if agentAddr != "" {
				if selector != "" {
					return usageErrorf("-l %q does not go through --agent; name the pods instead ('pod:NAMESPACE/web-*')", selector)
				}
				cl, err := dialAgent(a, "topo", agentAddr)
				if err != nil {
					return err
				}
				defer cl.Close()
				var notices []string
				if g, notices, err = cl.Topology(a.ctx, args); err != nil {
					return agentError("topo", err)
				}
				for _, n := range notices {
					fmt.Fprintln(a.stderr, termsafe.Escape(n))
				}
			} else {
				nss, _, err := openNetNSMany(a, args, selector)
				if err != nil {
					return fmt.Errorf("topo: %w", err)
				}
				opts.Namespaces = nss
				if g, err = topo.Build(opts); err != nil {
					return fmt.Errorf("topo: %w", err)
				}
			}
			if err := writeTopo(a, g, f, outFile); err != nil {
				return err
			}
			// Namespaces named on the command line must be drawn; with
			// --all, one that could not be read is reported and skipped.
			var failed error
			for _, n := range g.Namespaces {
				if n.Err == "" {
					continue
				}
				fmt.Fprintf(a.stderr, "netobs: topo: %s: %s\n", termsafe.Escape(n.Ref()), termsafe.Escape(n.Err))
				if !opts.All {
					failed = exitStatus{code: 1}
				}
			}
			return failed
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&all, "all", false, "draw every network namespace on the system (the default without NSREF)")
	fl.StringVar(&format, "format", "text", "output format: text, json, dot or svg")
	fl.StringVarP(&outFile, "output", "o", "", `write to FILE instead of standard output ("-" for standard output)`)
	addSelectorFlag(cmd, &selector, "l", "draw")
	addAgentFlag(cmd, &agentAddr)
	cmd.RegisterFlagCompletionFunc("format", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		var names []string
		for _, f := range topo.Formats {
			names = append(names, string(f))
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// writeTopo renders the graph to standard output or to a file, which is
// removed again if rendering fails.
func writeTopo(a *app, g *topo.Graph, f topo.Format, path string) error {
	var w io.Writer = a.stdout
	var file *os.File
	if path != "" && path != "-" {
		var err error
		file, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("topo: %w", err)
		}
		w = file
	}
	err := g.Write(a.ctx, w, f)
	if file != nil {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}
	if errors.Is(err, topo.ErrNoGraphviz) {
		return fmt.Errorf("topo: %w", err)
	}
	if err != nil {
		return fmt.Errorf("topo: write: %w", err)
	}
	return nil
}
