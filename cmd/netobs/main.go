// Command netobs observes Linux network namespaces from the outside. See
// the README for its commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/netobs/netobs/nsjoin"
	// ns exec and ns unshare run their commands through this hook.
	_ "github.com/netobs/netobs/nsjoin/exechook"
)

// The main goroutine keeps the main thread, which the runtime can never
// discard; namespace work happens on other, disposable threads.
func init() { runtime.LockOSThread() }

func main() {
	if nsjoin.SecureExec() {
		// Installed setuid or with file capabilities, netobs would let any
		// user enter, create and delete any namespace.
		os.Stderr.WriteString("netobs: refusing to run setuid, setgid or with file capabilities: any user could enter any namespace; install netobs as a plain executable and run it as root\n")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
