// Package exechook links in the pre-runtime hook that nsjoin.Command and
// nsjoin.Unshare need. Import it for its side effect in the main package of
// a program that runs commands in namespaces:
//
//	import _ "github.com/netobs/netobs/nsjoin/exechook"
//
// A program without it gets nsjoin.ErrHookNotLinked from Command and
// Unshare, and never runs the hook, whatever its environment holds.
//
// The hook is a C constructor (cgo; Linux only) that runs before the Go
// runtime starts: a Go process is multi-threaded by then, and the kernel
// lets only a single-threaded process join a user or time namespace. It
// acts only when nsjoin's Cmd.Start re-executed the binary: Start passes
// the instructions through an inherited socket it made, checked against a
// random nonce in the environment and against the socket's peer, which
// must be the parent process (see package nsjoin/internal/hookproto).
// With anything else in the environment, the hook removes the variable and
// the program's own main runs. Under AT_SECURE (a setuid or setgid binary,
// or one with file capabilities) the hook never acts: such a binary would
// let any user enter any namespace.
//
// In a build without cgo (CGO_ENABLED=0) this package is empty, and
// Command and Unshare fail with an error that says they need cgo.
package exechook
