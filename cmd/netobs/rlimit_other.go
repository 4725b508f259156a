//go:build !linux

package main

// raiseFDLimit does nothing where events is not supported.
func raiseFDLimit() {}
