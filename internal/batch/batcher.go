// Package batch group-commits: callers hand in one item each and wait for
// its result, and the items that arrive while a flush runs go together in
// the next flush (one statement, one pipeline, one fsync for all of them).
//
// Nothing waits on purpose: a lone item is flushed at once, and batches grow
// only as far as load makes them. No goroutine of its own runs: the caller
// whose item finds fewer than MaxFlushes flushes running becomes a leader
// and flushes what is queued, batch after batch, until the queue is empty;
// every other caller only waits for its reply. So an item costs no goroutine
// hop, and an idle Batcher holds nothing.
package batch

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultMaxBatch   = 500
	DefaultMaxFlushes = 4
	DefaultTimeout    = 10 * time.Second
)

// Config tunes a Batcher. Zero (or negative) fields mean the defaults.
type Config struct {
	// MaxBatch is the most items one flush gets. Default DefaultMaxBatch.
	MaxBatch int
	// MaxFlushes is the most flushes that run at once; a caller that finds
	// that many running queues its item for one of them. Default
	// DefaultMaxFlushes.
	MaxFlushes int
	// Timeout bounds one flush: its context ends then. A flush serves many
	// callers, so it runs under its own context, not under any caller's.
	// Default DefaultTimeout.
	Timeout time.Duration
}

// Flush writes items in one go. It must call reply exactly once for each
// index of items, with that item's result, before it returns; it may reply
// early (an item it does not send, or an answer ready before the rest of
// the work) and then go on. It must not keep items or reply after it
// returns. ctx ends after Config.Timeout.
type Flush[In, Out any] func(ctx context.Context, items []In, reply func(i int, out Out))

// Batcher group-commits items of type In into flushes, and hands each
// caller its item's Out. It is safe for concurrent use; make it with New.
type Batcher[In, Out any] struct {
	flush      Flush[In, Out]
	maxBatch   int
	maxFlushes int
	timeout    time.Duration

	mu      sync.Mutex
	items   []In // queued, in arrival order; calls[i] waits for items[i]
	calls   []*call[Out]
	running int        // leaders flushing now
	idle    *sync.Cond // on mu: running dropped to 0
}

type call[Out any] struct {
	out  Out
	done chan struct{} // closed once out is set
}

// New returns a Batcher that flushes with flush.
func New[In, Out any](cfg Config, flush Flush[In, Out]) *Batcher[In, Out] {
	b := &Batcher[In, Out]{flush: flush, maxBatch: cfg.MaxBatch, maxFlushes: cfg.MaxFlushes, timeout: cfg.Timeout}
	if b.maxBatch <= 0 {
		b.maxBatch = DefaultMaxBatch
	}
	if b.maxFlushes <= 0 {
		b.maxFlushes = DefaultMaxFlushes
	}
	if b.timeout <= 0 {
		b.timeout = DefaultTimeout
	}
	b.idle = sync.NewCond(&b.mu)
	return b
}

// Do queues in for the next flush and returns its result. When ctx ends
// first, Do returns ctx.Err() and the zero Out; the item may still be
// flushed (a caller that must not stop waiting passes a context that does
// not end). A caller that becomes a leader flushes until the queue is
// empty before it waits, whatever its ctx.
func (b *Batcher[In, Out]) Do(ctx context.Context, in In) (Out, error) {
	c := &call[Out]{done: make(chan struct{})}
	b.mu.Lock()
	b.items = append(b.items, in)
	b.calls = append(b.calls, c)
	lead := b.running < b.maxFlushes
	if lead {
		b.running++
	}
	b.mu.Unlock()
	if lead {
		b.drain()
	}
	select {
	case <-c.done:
		return c.out, nil
	case <-ctx.Done():
		var zero Out
		return zero, ctx.Err()
	}
}

// Wait blocks until no flush runs. Items queued meanwhile are flushed
// first: a leader ends only on an empty queue.
func (b *Batcher[In, Out]) Wait() {
	b.mu.Lock()
	for b.running > 0 {
		b.idle.Wait()
	}
	b.mu.Unlock()
}

// drain flushes batches until the queue is empty, then gives its turn back.
func (b *Batcher[In, Out]) drain() {
	for {
		b.mu.Lock()
		n := min(len(b.items), b.maxBatch)
		if n == 0 {
			b.running--
			if b.running == 0 {
				b.idle.Broadcast()
			}
			b.mu.Unlock()
			return
		}
		// Full slice expressions: appends to the rest of the queue never
		// write into this batch.
		items, calls := b.items[:n:n], b.calls[:n:n]
		b.items, b.calls = b.items[n:], b.calls[n:]
		b.mu.Unlock()
		b.run(items, calls)
	}
}

// run flushes one batch and checks that every item got its reply.
func (b *Batcher[In, Out]) run(items []In, calls []*call[Out]) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	replied := 0
	b.flush(ctx, items, func(i int, out Out) {
		c := calls[i]
		c.out = out
		close(c.done) // a second reply to one item panics here
		replied++
	})
	if replied != len(items) {
		// A caller would wait for ever: a bug in the flush function.
		panic(fmt.Sprintf("batch: flush replied to %d of %d items", replied, len(items)))
	}
}
