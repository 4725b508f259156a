//go:build !linux

package main

import "io"

// isTerminal is only needed where attach works (Linux).
func isTerminal(w io.Writer) bool { return false }
