//go:build !linux

package events

import (
	"context"
	"fmt"
	"runtime"

	"github.com/netobs/netobs/nsjoin"
)

// Watcher streams namespace events; on this system it cannot be created.
type Watcher struct{}

// New fails: network namespaces are Linux only.
func New(ctx context.Context, nss []*nsjoin.NS, opts Options) (*Watcher, error) {
	return nil, fmt.Errorf("watch events: not supported on %s", runtime.GOOS)
}

// Ready returns nil.
func (w *Watcher) Ready() <-chan struct{} { return nil }

// Events returns nil.
func (w *Watcher) Events() <-chan Event { return nil }

// Close does nothing.
func (w *Watcher) Close() error { return nil }

// Err returns nil.
func (w *Watcher) Err() error { return nil }

// Stats returns zeros.
func (w *Watcher) Stats() Stats { return Stats{} }
