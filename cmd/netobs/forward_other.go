//go:build !linux

package main

import (
	"context"

	"github.com/netobs/netobs/nsjoin"
)

func watchNamespace(ctx context.Context, ns *nsjoin.NS, gone func(error)) (stop func()) {
	return func() {}
}
