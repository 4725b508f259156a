//go:build !linux

package main

import "os"

// captureIsTTY: capture runs on Linux only; elsewhere nothing is a terminal.
func captureIsTTY(*os.File) bool { return false }
