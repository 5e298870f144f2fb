// Package finish runs the step of a request that must not be cut in half:
// once it has started it completes, bounded, even when the caller's context
// ends (a deadline, a client hang-up), while the caller is answered by its
// own deadline.
package finish

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultTimeout bounds a step whose caller has gone.
const DefaultTimeout = 10 * time.Second

// Group runs finishing steps and tracks them, so an owner can wait for
// the ones still running before it closes what they use. The zero Group
// is ready, with DefaultTimeout.
type Group struct {
	// Timeout bounds each step, counted from its start; zero means
	// DefaultTimeout.
	Timeout time.Duration
	wg      sync.WaitGroup
}

// Do runs step in a context that keeps ctx's values but not its
// cancellation, bounded by the group's Timeout. It returns step's error, or,
// when ctx ends first, an error wrapping ctx's cause: step then goes on in
// the background to its end or its bound.
func (g *Group) Do(ctx context.Context, step func(context.Context) error) error {
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	done := make(chan error, 1)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		done <- step(sctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("finishing in the background after the caller's end: %w", context.Cause(ctx))
	}
}

// Wait waits for every step started so far.
func (g *Group) Wait() { g.wg.Wait() }
