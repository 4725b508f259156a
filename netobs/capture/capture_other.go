//go:build !linux

package capture

import (
	"context"
	"fmt"
	"runtime"
)

var errGOOS = fmt.Errorf("packet capture in namespaces is not supported on %s", runtime.GOOS)

// Capture is a set of capture sockets; on this system it cannot be opened.
type Capture struct{}

// Open fails on systems other than Linux.
func Open(targets []Target, cfg Config) (*Capture, error) { return nil, wrap("capture", "", errGOOS) }

// OpenContext fails on systems other than Linux.
func OpenContext(ctx context.Context, targets []Target, cfg Config) (*Capture, error) {
	return nil, wrap("capture", "", errGOOS)
}

func (c *Capture) Interfaces() []*Interface                 { return nil }
func (c *Capture) Stats() []Stats                           { return nil }
func (c *Capture) Run(ctx context.Context, h Handler) error { return wrap("capture", "", errGOOS) }
func (c *Capture) Close() error                             { return nil }
