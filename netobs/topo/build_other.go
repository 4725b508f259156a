//go:build !linux

package topo

import (
	"fmt"
	"runtime"
)

// Build fails: network namespaces are Linux only.
func Build(opts Options) (*Graph, error) {
	return nil, &Error{Op: "build topology", Err: fmt.Errorf("not supported on %s", runtime.GOOS)}
}
