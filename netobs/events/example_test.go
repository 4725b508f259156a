package events_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/nsjoin"
)

// Print the link and address changes of one namespace as `ip monitor`
// would, until Ctrl-C. Entering the namespace needs root.
func ExampleWatch() {
	ns, err := nsjoin.Open("blue")
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	kinds, err := events.ParseKinds("link,addr")
	if err != nil {
		log.Fatal(err)
	}
	ch, err := events.Watch(ctx, ns, kinds)
	if err != nil {
		log.Fatal(err)
	}
	for ev := range ch {
		events.WriteText(os.Stdout, ev)
	}
}

// Every namespace on the system, those that appear later included, in one
// stream. Needs root.
func ExampleNew() {
	w, err := events.New(context.Background(), nil, events.Options{All: true, Kinds: events.KindsAll})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	for ev := range w.Events() {
		fmt.Println(ev.NS, ev.Action, ev.Kind, ev.Text)
	}
}

func ExampleParseKinds() {
	kinds, err := events.ParseKinds("addr, link")
	fmt.Println(kinds, kinds.Has(events.Route), err)
	_, err = events.ParseKinds("links")
	fmt.Println(err)
	// Output:
	// link,addr false <nil>
	// unknown event kind "links" (want a comma-separated list of link, addr, route, neigh, rule, nsid, or all)
}
