//go:build !linux

package sockdiag

import (
	"errors"
	"runtime"

	"github.com/netobs/netobs/nsjoin"
)

// List is not supported outside Linux.
func List(ns *nsjoin.NS, o Options) ([]Socket, error) {
	return nil, errors.New("list sockets: not supported on " + runtime.GOOS)
}
