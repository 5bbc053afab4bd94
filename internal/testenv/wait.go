package testenv

import (
	"context"
	"testing"
	"time"
)

// WaitFor polls cond until it holds, or fails tb after 10s naming what it waited for.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Run runs run (a source's or server's Run) in a goroutine until the test ends: its context
// is cancelled and Run's return awaited at cleanup.
func Run(tb testing.TB, run func(context.Context) error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = run(ctx)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
}
