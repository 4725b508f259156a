package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// interrupted is the cause of the app's context once a stop signal has
// arrived (see main).
type interrupted struct{ sig syscall.Signal }

func (e interrupted) Error() string { return "interrupted by " + unix.SignalName(e.sig) }

// startInterrupted is the error for a command stopped by ctx's end before
// it got going: for SIGINT or SIGTERM, exit status 128+N (130 for SIGINT),
// what a shell reports for a process the signal ended, and one line saying
// what was interrupted; for any other cause, that cause.
func startInterrupted(ctx context.Context, what string) error {
	cause := context.Cause(ctx)
	var in interrupted
	if errors.As(cause, &in) {
		return exitStatus{code: 128 + int(in.sig), msg: fmt.Sprintf("%s: %v", what, in)}
	}
	return fmt.Errorf("%s: %w", what, cause)
}

// interruptible runs step, a start-up step that may block in the kernel
// for as long as another process decides (open(2) of a FIFO waits for its
// other end), on its own goroutine, and waits for it or for ctx to end. If
// ctx ends first it returns startInterrupted(ctx, what) at once and leaves
// step to finish in the background; undo then releases what step made.
// netobs exits soon after, so the abandoned goroutine costs nothing.
func interruptible[T any](ctx context.Context, what string, step func() (T, error), undo func(T)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	abandoned := make(chan struct{})
	go func() {
		v, err := step()
		select {
		case done <- result{v, err}:
		case <-abandoned:
			if err == nil && undo != nil {
				undo(v)
			}
		}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		close(abandoned)
		// step may have finished at the same moment: undo its result.
		select {
		case r := <-done:
			if r.err == nil && undo != nil {
				undo(r.v)
			}
		default:
		}
		var zero T
		return zero, startInterrupted(ctx, what)
	}
}
