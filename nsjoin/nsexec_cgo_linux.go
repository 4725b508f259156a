//go:build linux && cgo

package nsjoin

// The hook itself is nsexec_linux.c; linking this file links it.

import "C"

func hookAvailable() error { return nil }
