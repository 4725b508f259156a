//go:build cgo

package nsjoin

// cgoEnabled says whether this binary was built with cgo, which the exec
// hook needs.
const cgoEnabled = true
