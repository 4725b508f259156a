//go:build linux && !cgo

package nsjoin

import "fmt"

func hookAvailable() error {
	return fmt.Errorf("%w: this binary was built without cgo, and entering user, mount and pid namespaces needs the pre-runtime hook cgo links in (build with CGO_ENABLED=1)", ErrUnsupported)
}
