package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/netobs/netobs/internal/termsafe"
	"github.com/netobs/netobs/netobs/agent"
	"github.com/netobs/netobs/netobs/runtime"
	"github.com/netobs/netobs/nsjoin"
	"github.com/spf13/cobra"
)

func init() { register(newNSCmd) }

func newNSCmd(a *app) *cobra.Command {
	ns := &cobra.Command{
		Use:   "ns",
		Short: "List, identify, compare, enter, create and delete namespaces",
		Args:  unknownSubcommand,
		RunE:  func(c *cobra.Command, args []string) error { return c.Help() },
	}
	ns.AddCommand(newNSLsCmd(a), newNSIDCmd(a), newNSSameCmd(a), newNSExecCmd(a),
		newNSUnshareCmd(a), newNSAddCmd(a), newNSDelCmd(a))
	return ns
}

// parseTypeFlag turns --type into a Type; "" means "not given".
func parseTypeFlag(s string) (nsjoin.Type, error) {
	if s == "" {
		return 0, nil
	}
	t, err := nsjoin.ParseType(s)
	if err != nil {
		return 0, usageErrorf("--type: %v", err)
	}
	return t, nil
}

// openRef opens a namespace reference. Without a type, a path opens as
// whatever namespace it is, and a PID, name, "self" or container as a
// network namespace.
func openRef(a *app, ref string, t nsjoin.Type) (*nsjoin.NS, error) {
	ns, _, err := openNS(a, ref, t)
	return ns, err
}

// addTypeFlag registers --type. It has no short form: -t is nsenter's
// --target (ns exec -t PID), and `ns id -t PID` must not read the PID as a
// type; -t here is a usage error that says so.
func addTypeFlag(c *cobra.Command, typ *string, usage string) {
	c.Flags().StringVar(typ, "type", "", usage)
	c.RegisterFlagCompletionFunc("type", completeTypes)
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations["flaghint:t"] = "--type has no short form (-t is --target, of ns exec)"
}

// completeNSRef offers `ip netns` names, "self" and the running
// containers (docker:NAME, podman:NAME) for NSREF arguments.
func completeNSRef(a *app) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		names, _ := nsjoin.NamesUnder(a.hostRoot)
		names = append(names, "self")
		names = append(names, runtime.Refs(a.ctx, a.runtimeOptions())...)
		return names, cobra.ShellCompDirectiveDefault
	}
}

// completeNames offers only `ip netns` names, for commands that take names.
func completeNames(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	names, _ := nsjoin.Names()
	return names, cobra.ShellCompDirectiveNoFileComp
}

func completeTypes(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	var names []string
	for _, t := range nsjoin.AllTypes {
		names = append(names, t.String())
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

func newNSLsCmd(a *app) *cobra.Command {
	var typ, agentAddr string
	var asJSON bool
	c := &cobra.Command{
		Use:   "ls [--type T] [--json]",
		Short: "List every namespace on the system, like lsns",
		Long: `List every namespace on the system, like lsns. For network namespaces the
CONTAINERS column (JSON: containers) names the running containers of every
runtime found (docker:NAME, podman:NAME, pod:NAMESPACE/NAME, cri:NAME,
containerd:NAMESPACE/ID) whose
namespace it is.

With --agent ADDR (a unix socket path, or HOST:PORT) it runs on the host
of that netobs agent (see netobs agent --help) and prints the same here.`,
		Example: `  netobs ns ls
  netobs ns ls --type net
  netobs ns ls --json | jq 'select(.nprocs > 1)'`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			t, err := parseTypeFlag(typ)
			if err != nil {
				return err
			}
			var infos []agent.NamespaceInfo
			if agentAddr != "" {
				cl, err := dialAgent(a, "ns ls", agentAddr)
				if err != nil {
					return err
				}
				defer cl.Close()
				if infos, err = cl.Namespaces(a.ctx, typ); err != nil {
					return agentError("ns ls", err)
				}
			} else if infos, err = listNamespaces(a, t); err != nil {
				return err
			}
			return printNamespaces(a, infos, asJSON)
		},
	}
	addTypeFlag(c, &typ, "only namespaces of this type (net, uts, ipc, mnt, pid, user, cgroup, time)")
	c.Flags().BoolVar(&asJSON, "json", false, "one JSON object per namespace")
	addAgentFlag(c, &agentAddr)
	return c
}

// listNamespaces lists namespaces of type t (0: all) with the containers
// of each network namespace: ns ls here, and on an agent's host.
func listNamespaces(a *app, t nsjoin.Type) ([]agent.NamespaceInfo, error) {
	var types []nsjoin.Type
	if t != 0 {
		types = []nsjoin.Type{t}
	}
	list := nsjoin.List
	if a.hostRoot != "" && a.hostRoot != "/" {
		list = func(types ...nsjoin.Type) ([]nsjoin.Info, error) { return nsjoin.ListUnder(a.hostRoot, types...) }
	}
	// The runtimes are asked while /proc is read.
	var ctrs map[nsKey][]runtime.Container
	asked := make(chan struct{})
	go func() {
		defer close(asked)
		if t == 0 || t == nsjoin.Net {
			ctrs = containersByNetns(a)
		}
	}()
	infos, err := list(types...)
	<-asked
	if err != nil {
		return nil, err
	}
	out := make([]agent.NamespaceInfo, len(infos))
	for i, in := range infos {
		out[i] = agent.NamespaceInfo{Info: in, User: userName(in)}
		if in.Type == nsjoin.Net {
			out[i].Containers = ctrs[nsKey{in.ID.Dev, in.ID.Inode}]
		}
	}
	return out, nil
}

func printNamespaces(a *app, infos []agent.NamespaceInfo, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(a.stdout)
		for _, in := range infos {
			j := infoJSON(in)
			for _, c := range in.Containers {
				j.Containers = append(j.Containers, nsContainer{c.Runtime, c.ID, c.Name, c.Pod, c.PodNamespace})
			}
			enc.Encode(j)
		}
		return nil
	}
	const row = "%10v %-6v %6v %7v %-8v %10v %-12v %-16v %v\n"
	fmt.Fprintf(a.stdout, row, "NS", "TYPE", "NPROCS", "PID", "USER", "USERNS", "NETNS", "CONTAINERS", "COMMAND")
	for _, in := range infos {
		var labels []string
		for _, c := range in.Containers {
			labels = append(labels, printable(c.Label()))
		}
		fmt.Fprintf(a.stdout, row, in.ID.Inode, in.Type, in.NProcs, dash(in.PID), dashS(termsafe.Escape(in.User)),
			dash(int(in.UserNS)), dashS(termsafe.Escape(strings.Join(in.Names, ","))), dashS(strings.Join(labels, ",")), dashS(termsafe.Escape(in.Command)))
	}
	return nil
}

type nsJSON struct {
	Type    string   `json:"type"`
	Inode   uint64   `json:"ns"`
	Dev     uint64   `json:"dev"`
	NSID    uint64   `json:"nsid,omitempty"`
	NProcs  int      `json:"nprocs"`
	PID     int      `json:"pid,omitempty"`
	User    string   `json:"user,omitempty"`
	UserNS  uint64   `json:"userns,omitempty"`
	Names   []string `json:"netns,omitempty"`
	Command string   `json:"command,omitempty"`
	// Containers are the containers whose network namespace this is.
	Containers []nsContainer `json:"containers,omitempty"`
}

type nsContainer struct {
	Runtime      string `json:"runtime"`
	ID           string `json:"container_id"`
	Name         string `json:"container"`
	Pod          string `json:"pod,omitempty"`
	PodNamespace string `json:"pod_namespace,omitempty"`
}

// nsKey identifies a namespace by device and inode alone.
type nsKey struct{ dev, inode uint64 }

// containersByNetns maps network namespaces to the running containers in
// them, from every runtime that answers; none answering is not an error
// for a listing of the system's namespaces.
func containersByNetns(a *app) map[nsKey][]runtime.Container {
	cs, err := runtime.List(a.ctx, "", a.runtimeOptions())
	if err != nil {
		return nil
	}
	m := map[nsKey][]runtime.Container{}
	for _, c := range cs {
		ns, err := runtime.OpenNS(c, nsjoin.Net)
		if err != nil {
			continue
		}
		k := nsKey{ns.ID().Dev, ns.ID().Inode}
		m[k] = append(m[k], c)
		ns.Close()
	}
	return m
}

func infoJSON(in agent.NamespaceInfo) nsJSON {
	return nsJSON{Type: in.Type.String(), Inode: in.ID.Inode, Dev: in.ID.Dev, NSID: in.ID.NSID,
		NProcs: in.NProcs, PID: in.PID, User: in.User, UserNS: in.UserNS, Names: in.Names, Command: in.Command}
}

func userName(in nsjoin.Info) string {
	if in.PID == 0 {
		return ""
	}
	if u, err := user.LookupId(strconv.Itoa(in.UID)); err == nil {
		return u.Username
	}
	return strconv.Itoa(in.UID)
}

func dash(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func dashS(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newNSIDCmd(a *app) *cobra.Command {
	var typ string
	var asJSON bool
	c := &cobra.Command{
		Use:   "id NSREF...",
		Short: "Print the identity of namespaces (what readlink /proc/PID/ns/TYPE prints)",
		Example: `  netobs ns id /proc/$PID/ns/net      # type read from the file
  netobs ns id $PID --type uts          # a PID: net unless --type says otherwise
  netobs ns id lab1 self`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("%sneeds at least one NSREF (a path, PID, ip netns name or self)", where(c))
			}
			return nil
		},
		ValidArgsFunction: completeNSRef(a),
		RunE: func(c *cobra.Command, args []string) error {
			t, err := parseTypeFlag(typ)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.stdout)
			for _, ref := range args {
				ns, err := openRef(a, ref, t)
				if err != nil {
					return err
				}
				id := ns.ID()
				names := nsjoin.NamesOf(id)
				ns.Close()
				if asJSON {
					enc.Encode(struct {
						Ref string `json:"ref"`
						nsJSON
					}{ref, nsJSON{Type: ns.Type().String(), Inode: id.Inode, Dev: id.Dev, NSID: id.NSID, Names: names, PID: ns.PID()}})
					continue
				}
				line := termsafe.Escape(ref) + " " + ns.String()
				if id.NSID != 0 {
					line += fmt.Sprintf(" nsid=%d", id.NSID)
				}
				if len(names) > 0 {
					line += " netns=" + termsafe.Escape(strings.Join(names, ","))
				}
				fmt.Fprintln(a.stdout, line)
			}
			return nil
		},
	}
	addTypeFlag(c, &typ, "namespace type for PID, name and self references (default net)")
	c.Flags().BoolVar(&asJSON, "json", false, "one JSON object per reference")
	return c
}

func newNSSameCmd(a *app) *cobra.Command {
	var typ string
	c := &cobra.Command{
		Use:   "same NSREF NSREF",
		Short: "Exit 0 if two references name the same namespace, 1 if not (2 on error)",
		Example: `  netobs ns same $PID lab1 || echo "process $PID is not in lab1"
  netobs ns same --type uts $PID self`,
		Args:              exactArgs(2, "two NSREFs"),
		ValidArgsFunction: completeNSRef(a),
		RunE: func(c *cobra.Command, args []string) error {
			t, err := parseTypeFlag(typ)
			if err != nil {
				return err
			}
			var nss [2]*nsjoin.NS
			for i, ref := range args {
				if nss[i], err = openRef(a, ref, t); err != nil {
					// 1 means "different": trouble is 2, as with cmp(1).
					return exitStatus{2, err.Error()}
				}
				defer nss[i].Close()
			}
			if nsjoin.Same(nss[0], nss[1]) {
				fmt.Fprintf(a.stdout, "same: %s\n", nss[0])
				return nil
			}
			fmt.Fprintf(a.stdout, "different: %s %s\n", nss[0], nss[1])
			return exitStatus{code: 1}
		},
	}
	addTypeFlag(c, &typ, "namespace type for PID, name and self references (default net)")
	return c
}

func newNSExecCmd(a *app) *cobra.Command {
	refs := map[nsjoin.Type]*string{}
	var target int
	c := &cobra.Command{
		Use:   "exec [--net R] [--uts R] [--ipc R] [--mnt R] [--pid R] [--user R] [--cgroup R] [--time R] [-t PID] -- CMD...",
		Short: "Run a command inside namespaces of any type, like nsenter",
		Long: `Run CMD inside the given namespaces. -t PID enters every namespace of that
process (those that differ from netobs's own); --TYPE R names one namespace
by NSREF and overrides -t for that type; -t TID enters that thread's
namespaces. Joining a PID namespace forks, so that CMD is inside it.
Entering a user namespace makes CMD root there. CMD's exit status is
netobs's; 127 if CMD was not found, 126 if it could not be executed.
Ctrl-C reaches CMD once, from the terminal (netobs ignores SIGINT and
SIGQUIT while CMD runs); SIGTERM and SIGHUP sent to netobs are passed on.`,
		Example: `  netobs ns exec --net lab1 -- ip addr
  netobs ns exec -t $PID -- sh              # all namespaces of process $PID
  netobs ns exec --net $PID --uts $PID -- hostname`,
		ValidArgsFunction: completeNSRef(a),
		RunE: func(c *cobra.Command, argv []string) error {
			if len(argv) == 0 {
				return usageErrorf("ns exec: no command given after --")
			}
			if c.Flags().Changed("target") && target <= 0 {
				return usageErrorf("ns exec: -t %d is not a PID", target)
			}
			nss, err := execNamespaces(a, refs, target)
			defer closeAll(nss)
			if err != nil {
				return err
			}
			cmd, err := nsjoin.Command(nss, argv...)
			if err != nil {
				return startError(err)
			}
			return runForeground(a, cmd)
		},
	}
	c.Flags().SetInterspersed(false)
	for _, t := range nsjoin.AllTypes {
		refs[t] = c.Flags().String(t.String(), "", "enter this "+t.String()+" namespace (NSREF)")
		c.RegisterFlagCompletionFunc(t.String(), completeNSRef(a))
	}
	c.Flags().IntVarP(&target, "target", "t", 0, "enter every namespace of this process")
	return c
}

// execNamespaces opens what ns exec was asked to enter.
func execNamespaces(a *app, refs map[nsjoin.Type]*string, target int) ([]*nsjoin.NS, error) {
	var nss []*nsjoin.NS
	for _, t := range nsjoin.AllTypes {
		ref := *refs[t]
		if ref == "" && target != 0 {
			if !nsjoin.KernelHas(t) {
				continue
			}
			ns, err := nsjoin.OpenType(strconv.Itoa(target), t)
			if err != nil {
				return nss, err
			}
			// Entering one's own namespace is a no-op, and for a user
			// namespace an error: leave those out, as nsenter does.
			if self, err := nsjoin.Self(t); err == nil {
				same := nsjoin.Same(self, ns)
				self.Close()
				if same {
					ns.Close()
					continue
				}
			}
			nss = append(nss, ns)
			continue
		}
		if ref == "" {
			continue
		}
		ns, err := openRef(a, ref, t)
		if err != nil {
			return nss, err
		}
		nss = append(nss, ns)
	}
	if len(nss) == 0 {
		if target != 0 {
			return nil, fmt.Errorf("ns exec: process %d is in netobs's own namespaces: nothing to enter", target)
		}
		return nil, usageErrorf("ns exec: name a namespace to enter (--net NSREF, ..., or -t PID)")
	}
	return nss, nil
}

func closeAll(nss []*nsjoin.NS) {
	for _, ns := range nss {
		ns.Close()
	}
}

// runForeground runs cmd on netobs's terminal and exits with its status.
//
// Signals reach cmd once. cmd stays in netobs's process group, so what the
// terminal sends to the foreground group (Ctrl-C's SIGINT, Ctrl-\'s SIGQUIT,
// SIGHUP on hangup), or kill(-PGRP) sends, reaches cmd directly: netobs
// ignores SIGINT and SIGQUIT while cmd runs and does not pass them on.
// SIGTERM and SIGHUP, which are usually sent to netobs's PID alone, are
// passed on to cmd; the hook's process that waits for cmd in a new PID
// namespace relays only what netobs sent it, never the group's copy.
func runForeground(a *app, cmd *nsjoin.Cmd) error {
	cmd.Cmd.Stdin, cmd.Cmd.Stdout, cmd.Cmd.Stderr = a.stdin, a.stdout, a.stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, stopSignals...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return startError(err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGTERM || s == syscall.SIGHUP {
					cmd.Cmd.Process.Signal(s)
				}
			case <-done:
				return
			}
		}
	}()
	cmd.Wait()
	close(done)
	if code := nsjoin.ExitCode(cmd.Cmd.ProcessState); code != 0 {
		return exitStatus{code: code}
	}
	return nil
}

// startError gives a command that could not be started the exit status
// nsenter and env give: 127 not found, 126 not executable; else 1.
func startError(err error) error {
	var ee *nsjoin.ExecError
	switch {
	case errors.As(err, &ee):
		return exitStatus{ee.ExitCode(), err.Error()}
	case errors.Is(err, nsjoin.ErrHookNotLinked):
		// netobs links the hook; only a build without cgo lacks it.
		return errors.New("ns exec and ns unshare need cgo, and this netobs was built with CGO_ENABLED=0 (rebuild it with CGO_ENABLED=1)")
	}
	return err
}

func newNSUnshareCmd(a *app) *cobra.Command {
	want := map[nsjoin.Type]*bool{}
	var opts nsjoin.UnshareOptions
	var fork bool
	c := &cobra.Command{
		Use:   "unshare [--net] [--uts] [--ipc] [--mnt] [--pid] [--user] [--cgroup] [--time] [--hostname H] [--map-root-user] [--fork] [--mount-proc] -- CMD...",
		Short: "Run a command in new namespaces, like unshare",
		Long: `Run CMD in new namespaces of the chosen types. A new PID or time namespace
holds only children, so netobs always forks for those (--fork is implied);
--mount-proc implies --mnt; --hostname needs --uts; --map-root-user needs
--user and makes CMD root in the new user namespace. Exit status and
signals as for ns exec.`,
		Example: `  netobs ns unshare --uts --hostname demo -- hostname
  netobs ns unshare --pid --fork --mount-proc -- ps ax
  netobs ns unshare --user --map-root-user --net -- id`,
		RunE: func(c *cobra.Command, argv []string) error {
			if len(argv) == 0 {
				return usageErrorf("ns unshare: no command given after --")
			}
			if opts.Hostname != "" && !*want[nsjoin.UTS] {
				return usageErrorf("ns unshare: --hostname needs --uts (a new UTS namespace)")
			}
			if opts.MapRootUser && !*want[nsjoin.User] {
				return usageErrorf("ns unshare: --map-root-user needs --user (a new user namespace)")
			}
			for _, t := range nsjoin.AllTypes {
				if *want[t] {
					opts.Types = append(opts.Types, t)
				}
			}
			if len(opts.Types) == 0 && !opts.MountProc {
				return usageErrorf("ns unshare: choose at least one namespace type (--net, --uts, ...)")
			}
			opts.Fork = fork
			cmd, err := nsjoin.Unshare(opts, argv...)
			if err != nil {
				return startError(err)
			}
			return runForeground(a, cmd)
		},
	}
	c.Flags().SetInterspersed(false)
	for _, t := range nsjoin.AllTypes {
		want[t] = c.Flags().Bool(t.String(), false, "new "+t.String()+" namespace")
	}
	c.Flags().BoolVar(want[nsjoin.Mnt], "mount", false, "new mount namespace (same as --mnt)")
	c.Flags().StringVar(&opts.Hostname, "hostname", "", "hostname in the new UTS namespace")
	c.Flags().BoolVarP(&opts.MapRootUser, "map-root-user", "r", false, "be root in the new user namespace")
	c.Flags().BoolVarP(&fork, "fork", "f", false, "fork before running CMD (implied by --pid and --time)")
	c.Flags().BoolVar(&opts.MountProc, "mount-proc", false, "mount a new /proc (implies --mnt)")
	return c
}

func newNSAddCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "add NAME",
		Short: "Create a named network namespace, as ip netns add does",
		Long: `Create a named network namespace, as ip netns add does. NAME must be one
an NSREF can name: not all digits (a PID), not "self", no '/', spaces or
control characters.`,
		Example: "  netobs ns add lab3 && ip netns exec lab3 ip link",
		Args:    exactArgs(1, "a NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := nsjoin.ValidateNewName(args[0]); err != nil {
				return usageError{fmt.Errorf("ns add: %w", err)}
			}
			ns, err := nsjoin.NewNamed(args[0])
			if err != nil {
				return err
			}
			defer ns.Close()
			fmt.Fprintf(a.stdout, "%s %s\n", args[0], ns)
			return nil
		},
	}
}

func newNSDelCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "del NAME...",
		Short:             "Delete named network namespaces, as ip netns del does",
		Args:              func(c *cobra.Command, args []string) error { return minArgs(c, args, 1, "a NAME") },
		ValidArgsFunction: completeNames,
		RunE: func(c *cobra.Command, args []string) error {
			for _, name := range args {
				if err := nsjoin.DeleteNamed(name); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func minArgs(c *cobra.Command, args []string, n int, what string) error {
	if len(args) < n {
		return usageErrorf("%sneeds %s (see %s --help)", where(c), what, c.CommandPath())
	}
	return nil
}
