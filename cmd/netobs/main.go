// Command netobs observes Linux network namespaces from the outside. See
// the README for its commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	// ns exec and ns unshare run their commands through this hook.
	_ "github.com/netobs/netobs/nsjoin/exechook"
)

// The main goroutine keeps the main thread, which the runtime can never
// discard; namespace work happens on other, disposable threads.
func init() { runtime.LockOSThread() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
