package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/nsjoin"
	"github.com/spf13/cobra"
)

func init() { register(newEventsCmd) }

func newEventsCmd(a *app) *cobra.Command {
	var (
		kinds   string
		jsonOut bool
		initial bool
		all     bool
		count   int
		rescan  time.Duration
		rcvbuf  int
	)
	cmd := &cobra.Command{
		Use:   "events [NSREF...|--all]",
		Short: "Stream link, address, route, neighbour, rule and nsid changes from network namespaces",
		Long: `events prints routing-netlink changes the way 'ip monitor' does, from one,
many or all network namespaces at once, each line labelled with the namespace
it came from (net:[INODE], then its ip-netns name or a PID in it).

Without NSREF it watches netobs's own namespace. With --all it watches every
network namespace on the system, picks up new ones (named ones at once,
process ones within --rescan) and reports those that go away. A namespace
found after the start is reported as appeared, followed by its state as
initial events: what was made in it before netobs subscribed is not lost.
A namespace that lives only briefly may be missed: a named one that is
gone within about 10ms of its creation, a process one that lives less than
--rescan (default 1s, at least 10ms, at most 1h).

If the kernel drops events because they arrive faster than they are read
(ENOBUFS), events reads the namespace's state again and prints a RESYNC
event listing what changed: no loss passes silently.

Only messages from the kernel are believed: a process inside a watched
namespace can send netlink messages to netobs's sockets there; they are
dropped and counted in the totals printed at the end ("forged").`,
		Example: `  netobs events ns1 ns2
  netobs events --all --kinds link,addr
  netobs events --initial --json 1234
  netobs events --count 1 ns1   # wait for one change`,
		RunE: func(c *cobra.Command, args []string) error {
			ks, err := events.ParseKinds(kinds)
			if err != nil {
				return usageErrorf("events: --kinds: %v", err)
			}
			if all && len(args) > 0 {
				return usageErrorf("events: --all watches every namespace; give it no NSREF (got %s)", strings.Join(args, " "))
			}
			if count < 0 {
				return usageErrorf("events: --count must be 0 (no limit) or more, not %d", count)
			}
			if rescan < events.MinRescan || rescan > events.MaxRescan {
				return usageErrorf("events: --rescan %q out of range: give a duration from %v to %v", c.Flags().Lookup("rescan").Value.String(), events.MinRescan, events.MaxRescan)
			}
			if !all && len(args) == 0 {
				args = []string{"self"}
			}
			var nss []*nsjoin.NS
			defer func() {
				for _, ns := range nss {
					ns.Close()
				}
			}()
			for _, ref := range args {
				ns, err := nsjoin.Open(ref)
				if err != nil {
					return fmt.Errorf("events: %w", err)
				}
				nss = append(nss, ns)
			}
			w, err := events.New(a.ctx, nss, events.Options{Kinds: ks, Initial: initial, All: all, Rescan: rescan, RcvBuf: rcvbuf})
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
			err = printEvents(a, w, jsonOut, count)
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
	return cmd
}

func printEvents(a *app, w *events.Watcher, jsonOut bool, count int) error {
	out := bufio.NewWriterSize(a.stdout, 32<<10)
	enc := json.NewEncoder(out)
	ch := w.Events()
	printed, initial := 0, 0
	for ev := range ch {
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
		n := printed - initial
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
	w.Close()
	if err := out.Flush(); err != nil {
		return fmt.Errorf("events: write: %w", err)
	}
	// What was printed, not what the watcher delivered: with --count the
	// last events delivered are never read.
	st := w.Stats()
	fmt.Fprintf(a.stderr, "events: %d events printed (%d initial), %d resyncs after overflow, %d forged netlink messages dropped\n", printed, initial, st.Resyncs, st.Forged)
	if err := w.Err(); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	return nil
}
