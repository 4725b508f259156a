//go:build !cgo

package nsjoin

const cgoEnabled = false
