//go:build !linux

package topo

import (
	"fmt"
	"runtime"

	"github.com/netobs/netobs/nsjoin"
)

// Build fails: network namespaces are Linux only.
func Build(opts Options) (*Graph, error) {
	return nil, &Error{Op: "build topology", Err: fmt.Errorf("not supported on %s", runtime.GOOS)}
}

// OpenNamespace fails: network namespaces are Linux only.
func OpenNamespace(id string) (*nsjoin.NS, error) {
	return nil, &Error{Op: "open namespace " + id, Err: fmt.Errorf("not supported on %s", runtime.GOOS)}
}

// OpenNamespaceUnder fails: network namespaces are Linux only.
func OpenNamespaceUnder(root, id string) (*nsjoin.NS, error) { return OpenNamespace(id) }
