package main

import (
	"context"
	"fmt"
	"time"

	"github.com/netobs/netobs/nsjoin"
)

// nsPollInterval is how often forward checks that its namespace is still
// there. The handle keeps the namespace itself alive, so "gone" means what
// the user sees: the process named by PID exited, or the file named by a
// path or name was deleted or now names another namespace.
const nsPollInterval = 300 * time.Millisecond

// watchNamespace calls gone once if ns goes away, until ctx ends or the
// returned stop is called.
func watchNamespace(ctx context.Context, ns *nsjoin.NS, gone func(error)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(nsPollInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if g, why := ns.Gone(); g {
				gone(fmt.Errorf("namespace %s went away: %s", ns.Ref(), why))
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}
