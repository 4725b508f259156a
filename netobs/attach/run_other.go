//go:build !linux

package attach

import (
	"context"
	"errors"
	"fmt"
	"runtime"
)

// Run fails on this system: TUN/TAP devices in namespaces are Linux only.
func Run(ctx context.Context, o Options) (Result, error) {
	return Result{}, fmt.Errorf("attach %s: %w", o.Ref, errors.New("not supported on "+runtime.GOOS))
}
