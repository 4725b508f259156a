package main

import (
	"context"
	"fmt"
	"time"

	"github.com/netobs/netobs/nsjoin"
	"golang.org/x/sys/unix"
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
			if err := nsGone(ns); err != nil {
				gone(err)
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

func nsGone(ns *nsjoin.NS) error {
	if ns.PID() != 0 {
		if !ns.ProcessAlive() {
			return fmt.Errorf("namespace %s went away: process %d exited", ns.Ref(), ns.PID())
		}
		return nil
	}
	if ns.Ref() == "self" {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(ns.Path(), &st); err != nil {
		return fmt.Errorf("namespace %s went away: %s: %v", ns.Ref(), ns.Path(), err)
	}
	if id := ns.ID(); st.Dev != id.Dev || st.Ino != id.Inode {
		return fmt.Errorf("namespace %s went away: %s now names another namespace", ns.Ref(), ns.Path())
	}
	return nil
}
