// Command netobs observes Linux network namespaces from the outside. See
// the README for its commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// The main goroutine keeps the main thread, which the runtime can never
// discard; namespace work happens on other, disposable threads.
func init() { runtime.LockOSThread() }

// SIGINT and SIGTERM cancel the context, with the signal as its cause
// (interrupted), from the first instruction of run on.
func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() { cancel(interrupted{(<-sigs).(syscall.Signal)}) }()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	signal.Stop(sigs)
	os.Exit(code)
}
