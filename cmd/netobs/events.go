package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netobs/netobs/internal/termsafe"
	"github.com/netobs/netobs/netobs/agent"
	"github.com/netobs/netobs/netobs/agent/agentpb"
	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/netobs/runtime"
	"github.com/netobs/netobs/nsjoin"
	"github.com/spf13/cobra"
)

func init() { register(newEventsCmd) }

func newEventsCmd(a *app) *cobra.Command {
	var (
		kinds    string
		jsonOut  bool
		initial  bool
		all      bool
		count    int
		rescan   time.Duration
		rcvbuf   int
		selector string
		addr     string
	)
	cmd := &cobra.Command{
		Use:   "events [NSREF...] [-l SELECTOR] | --all",
		Short: "Stream link, address, route, neighbour, rule and nsid changes from network namespaces",
		Long: `events prints routing-netlink changes the way 'ip monitor' does, from one,
many or all network namespaces at once, each line labelled with the namespace
it came from (net:[INODE], then its ip-netns name or a PID in it, or for a
container named by NSREF the container: docker:web, pod:default/web; --json
then carries runtime, container_id, container, pod and pod_namespace in
"ns", as capture does).

A pod glob in quotes ('pod:default/web-*') and -l SELECTOR (labels of the
runtimes' containers and pods: app=web) expand to every running match.
Without NSREF or -l it watches netobs's own namespace. With --all it watches every
network namespace on the system, picks up new ones (named ones at once,
process ones within --rescan) and reports those that go away. A namespace
found after the start is reported as appeared, followed by its state as
initial events: what was made in it before netobs subscribed is not lost.
A namespace that lives only briefly may be missed: a named one that is
gone within about 10ms of its creation, a process one that lives less than
--rescan (default 1s, at least 10ms, at most 1h).

Each namespace found with --all takes one file descriptor, its netlink
socket (one named by NSREF also keeps the namespace open); events raises
its soft open-files limit to the hard one at start, so watching N
namespaces needs a hard limit (ulimit -Hn) a little above N.

If the kernel drops events because they arrive faster than they are read
(ENOBUFS), events reads the namespace's state again and prints a RESYNC
event listing what changed: no loss passes silently.

Only messages from the kernel are believed: a process inside a watched
namespace can send netlink messages to netobs's sockets there; they are
dropped and counted in the totals printed at the end ("forged").

SIGINT and SIGTERM stop it: the output is flushed and the totals printed on
stderr (exit 0); if nothing reads standard output for 2s after the signal,
it gives up on the output, prints the totals and exits 1.

With --agent ADDR (a unix socket path, or HOST:PORT) it runs on the host
of that netobs agent (see netobs agent --help) and prints the same here.`,
		Example: `  netobs events lab1 lab2
  netobs events --all --kinds link,addr
  netobs events --initial --json $PID
  netobs events --count 1 lab1   # wait for one change
  netobs events -l app=web       # every container and pod labelled app=web`,
		RunE: func(c *cobra.Command, args []string) error {
			ks, err := events.ParseKinds(kinds)
			if err != nil {
				return usageErrorf("events: --kinds: %v", err)
			}
			if all && (len(args) > 0 || selector != "") {
				return usageErrorf("events: --all watches every namespace; give it no NSREF or -l (got %s)", termsafe.Quote(strings.TrimSpace(strings.Join(args, " ")+" "+selector)))
			}
			if count < 0 {
				return usageErrorf("events: --count must be 0 (no limit) or more, not %d", count)
			}
			if rescan < events.MinRescan || rescan > events.MaxRescan {
				return usageErrorf("events: --rescan %q out of range: give a duration from %v to %v", c.Flags().Lookup("rescan").Value.String(), events.MinRescan, events.MaxRescan)
			}
			if addr != "" {
				if selector != "" {
					return usageErrorf("-l %q does not go through --agent; name the pods instead ('pod:NAMESPACE/web-*')", selector)
				}
				return remoteEvents(a, addr, &agentpb.EventsRequest{Nsrefs: args, All: all, Kinds: kinds, Initial: initial,
					Rescan: int64(rescan), Count: uint64(count)}, jsonOut)
			}
			if !all && len(args) == 0 && selector == "" {
				args = []string{"self"}
			}
			raiseFDLimit()
			var nss []*nsjoin.NS
			defer func() {
				for _, ns := range nss {
					ns.Close()
				}
			}()
			// Events from a container's namespace are labelled with the
			// container (docker:web), as capture labels its packets.
			owners := map[[2]uint64]*runtime.Container{}
			opened, ctrs, err := openNetNSMany(a, args, selector)
			if err != nil {
				return fmt.Errorf("events: %w", err)
			}
			nss = opened
			for i, ns := range nss {
				if ctrs[i] != nil {
					owners[[2]uint64{ns.ID().Dev, ns.ID().Inode}] = ctrs[i]
				}
			}
			w, err := events.New(a.ctx, nss, events.Options{Kinds: ks, Initial: initial, All: all, Rescan: rescan, RcvBuf: rcvbuf, HostRoot: a.hostRoot})
			if errors.Is(err, syscall.EMFILE) {
				return fmt.Errorf("%w: each namespace takes a file descriptor; raise the hard open-files limit (ulimit -Hn) above the number of namespaces to watch", err)
			}
			if err != nil {
				return err
			}
			defer w.Close()
			// Said once the sockets are subscribed and the initial state
			// read: a change made after this line is reported as one.
			said := make(chan struct{})
			go func() {
				defer close(said)
				select {
				case <-w.Ready():
					fmt.Fprintf(a.stderr, "events: watching %d namespaces for %s\n", w.Stats().Namespaces, ks)
				case <-a.ctx.Done():
				}
			}()
			pr := &printer{a: a, w: w, owners: owners}
			printed := make(chan error, 1)
			go func() { printed <- pr.run(jsonOut, count) }()
			select {
			case err = <-printed:
			case <-a.ctx.Done():
				// Stopped: the watcher ends at once and the printer flushes
				// what is left, unless nobody reads standard output. Then a
				// write blocks for good; that must not keep netobs running.
				select {
				case err = <-printed:
				case <-time.After(outputGrace):
					w.Close()
					pr.totals()
					err = fmt.Errorf("events: write: standard output not read for %v after the stop; giving up", outputGrace)
				}
			}
			<-said
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&kinds, "kinds", "all", "kinds of change to report: comma-separated link, addr, route, neigh, rule, nsid, or all")
	f.BoolVar(&jsonOut, "json", false, "print one JSON object per event")
	f.BoolVar(&initial, "initial", false, "print the objects present at the start first (and of namespaces found later)")
	f.BoolVar(&all, "all", false, "watch every network namespace on the system, including ones created later")
	f.IntVarP(&count, "count", "c", 0, "exit after `N` events (initial state not counted; 0: no limit)")
	f.DurationVar(&rescan, "rescan", time.Second, "how often to look for new and vanished namespaces (10ms to 1h); a process's namespace that lives less is missed")
	f.IntVar(&rcvbuf, "rcvbuf", events.DefaultRcvBuf, "receive buffer per namespace in `bytes` (tiny values provoke overflow, for testing)")
	f.MarkHidden("rcvbuf")
	addSelectorFlag(cmd, &selector, "l", "also watch")
	addAgentFlag(cmd, &addr)
	return cmd
}

// outputGrace is how long events waits, once stopped, for its output to
// be written.
const outputGrace = 2 * time.Second

// printer writes a watcher's events to standard output.
type printer struct {
	a               *app
	w               *events.Watcher
	owners          map[[2]uint64]*runtime.Container // containers of the namespaces named, by device and inode
	printed, initNo atomic.Int64                     // events written, and the initial ones among them
	once            sync.Once
}

func (p *printer) run(jsonOut bool, count int) error {
	out := bufio.NewWriterSize(p.a.stdout, 32<<10)
	enc := json.NewEncoder(out)
	ch := p.w.Events()
	for ev := range ch {
		if c := p.owners[[2]uint64{ev.NS.Dev, ev.NS.Inode}]; c != nil {
			ev.NS.Label, ev.NS.Owner = c.Label(), containerOwner(c)
		}
		var err error
		if jsonOut {
			err = enc.Encode(ev)
		} else {
			err = events.WriteText(out, ev)
		}
		printed := p.printed.Add(1)
		initial := p.initNo.Load()
		if ev.Action == events.Initial {
			initial = p.initNo.Add(1)
		}
		n := int(printed - initial)
		// Flush when nothing else is waiting: bursts are written in large
		// writes, a lone event at once.
		if err == nil && (len(ch) == 0 || (count > 0 && n >= count)) {
			err = out.Flush()
		}
		if err != nil {
			return fmt.Errorf("events: write: %w", err)
		}
		if count > 0 && n >= count {
			break
		}
	}
	p.w.Close()
	if err := out.Flush(); err != nil {
		return fmt.Errorf("events: write: %w", err)
	}
	p.totals()
	if err := p.w.Err(); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	return nil
}

// totals prints the final counts, once: what was printed, not what the
// watcher delivered (with --count the last events delivered are not read).
func (p *printer) totals() {
	p.once.Do(func() {
		st := p.w.Stats()
		fmt.Fprintf(p.a.stderr, "events: %d events printed (%d initial), %d resyncs after overflow, %d forged netlink messages dropped\n",
			p.printed.Load(), p.initNo.Load(), st.Resyncs, st.Forged)
	})
}

// remoteEvents is events run on an agent's host, printed as here.
func remoteEvents(a *app, addr string, req *agentpb.EventsRequest, jsonOut bool) error {
	cl, err := dialAgent(a, "events", addr)
	if err != nil {
		return err
	}
	defer cl.Close()
	out := bufio.NewWriterSize(a.stdout, 32<<10)
	enc := json.NewEncoder(out)
	var printed, initial int64
	res, err := cl.Events(a.ctx, req, agent.EventsHandler{
		Ready: func(n int, kinds string) {
			fmt.Fprintf(a.stderr, "events: watching %d namespaces for %s\n", n, kinds)
		},
		Notice: func(text string) { fmt.Fprintln(a.stderr, termsafe.Escape(text)) },
		Event: func(ev events.Event) error {
			var err error
			if jsonOut {
				err = enc.Encode(ev)
			} else {
				err = events.WriteText(out, ev)
			}
			printed++
			if ev.Action == events.Initial {
				initial++
			}
			if err == nil {
				err = out.Flush()
			}
			if err != nil {
				return fmt.Errorf("events: write: %w", err)
			}
			return nil
		},
	})
	if ferr := out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("events: write: %w", ferr)
	}
	var resyncs, forged, dropped uint64
	if res != nil {
		resyncs, forged, dropped = res.Resyncs, res.Forged, res.AgentDropped
	}
	if res != nil || printed > 0 {
		fmt.Fprintf(a.stderr, "events: %d events printed (%d initial), %d resyncs after overflow, %d forged netlink messages dropped, %d dropped by agent\n",
			printed, initial, resyncs, forged, dropped)
	}
	if err != nil {
		return agentError("events", err)
	}
	if res.Err != "" {
		return fmt.Errorf("events: agent %s: %s", addr, res.Err)
	}
	return nil
}
