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

// stopSignals cancel the context every command runs with.
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

func main() {
	if nsjoin.SecureExec() {
		// Installed setuid or with file capabilities, netobs would let any
		// user enter, create and delete any namespace.
		os.Stderr.WriteString("netobs: refusing to run setuid, setgid or with file capabilities: any user could enter any namespace; install netobs as a plain executable and run it as root\n")
		os.Exit(1)
	}
	// Every signal that ends a program from a terminal or a supervisor
	// (SIGHUP when the terminal closes, SIGQUIT from Ctrl-\) stops the
	// long-running commands through their cleanup, as SIGINT does: counts
	// printed, devices and tc rules removed. The context ends with the
	// signal as its cause (interrupted), from the first instruction of run on.
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, stopSignals...)
	go func() { cancel(interrupted{(<-sigs).(syscall.Signal)}) }()
	// The command runs on a goroutine of its own, main staying locked to
	// the main thread: each time a locked goroutine blocks and wakes, the
	// runtime hands its thread over with a futex wake and a context
	// switch, and a capture's loop (local, or a client reading an agent's
	// stream) blocks and wakes thousands of times a second.
	done := make(chan int, 1)
	go func() { done <- run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr) }()
	code := <-done
	// The handler stays to the end: a second stop signal (a user pressing
	// Ctrl-C twice, a supervisor repeating SIGTERM) that arrives after run
	// has cleaned up must not kill netobs with the default action between
	// here and os.Exit, replacing its status with 128+N.
	os.Exit(code)
}
