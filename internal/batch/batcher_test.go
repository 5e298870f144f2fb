package batch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"couponpush/internal/enginetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gate is a flush that records its batches and, while closed, blocks each
// batch until the test lets it go.
type gate struct {
	mu      sync.Mutex
	batches [][]int
	running int
	most    int
	release chan struct{} // nil: never block
}

func (g *gate) flush(_ context.Context, items []int, reply func(int, int)) {
	g.mu.Lock()
	g.batches = append(g.batches, append([]int(nil), items...))
	g.running++
	g.most = max(g.most, g.running)
	g.mu.Unlock()
	if g.release != nil {
		<-g.release
	}
	for i, v := range items {
		reply(i, v*10)
	}
	g.mu.Lock()
	g.running--
	g.mu.Unlock()
}

func (g *gate) count() (batches, running int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.batches), g.running
}

func (b *Batcher[In, Out]) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items)
}

func (b *Batcher[In, Out]) flushing() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	enginetest.Eventually(t, what, 10*time.Second, cond)
}

func TestDefaults(t *testing.T) {
	b := New(Config{MaxBatch: -1}, (&gate{}).flush)
	if b.maxBatch != DefaultMaxBatch || b.maxFlushes != DefaultMaxFlushes || b.timeout != DefaultTimeout {
		t.Fatalf("defaults: batch %d flushes %d timeout %v", b.maxBatch, b.maxFlushes, b.timeout)
	}
}

func TestLoneItemFlushedAtOnce(t *testing.T) {
	g := &gate{}
	b := New(Config{}, g.flush)
	out, err := b.Do(context.Background(), 7)
	if err != nil || out != 70 {
		t.Fatalf("Do(7) = %d, %v; want 70, nil", out, err)
	}
	if n, _ := g.count(); n != 1 {
		t.Fatalf("%d flushes, want 1", n)
	}
}

// TestGroupCommit: items that arrive while a flush runs go together in the
// next flushes, at most MaxBatch each, and each caller gets its own result.
func TestGroupCommit(t *testing.T) {
	g := &gate{release: make(chan struct{})}
	b := New(Config{MaxBatch: 4, MaxFlushes: 1}, g.flush)
	const n = 11
	type result struct{ in, out int }
	results := make(chan result, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	do := func(v int) {
		defer wg.Done()
		out, err := b.Do(context.Background(), v)
		if err != nil {
			errs <- err
		}
		results <- result{v, out}
	}
	wg.Add(1)
	go do(0) // the leader: its flush blocks on the gate
	eventually(t, "the first flush", func() bool { n, _ := g.count(); return n == 1 })
	for v := 1; v < n; v++ {
		wg.Add(1)
		go do(v)
	}
	eventually(t, "10 queued items", func() bool { return b.queued() == n-1 })
	close(g.release)
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Errorf("Do: %v", err)
	}
	for r := range results {
		if r.out != r.in*10 {
			t.Errorf("Do(%d) = %d, want %d", r.in, r.out, r.in*10)
		}
	}
	sizes := []int{}
	for _, bt := range g.batches {
		sizes = append(sizes, len(bt))
	}
	if want := []int{1, 4, 4, 2}; !slices.Equal(sizes, want) {
		t.Fatalf("batch sizes %v, want %v", sizes, want)
	}
}

// TestMaxFlushes: no more flushes run at once than MaxFlushes.
func TestMaxFlushes(t *testing.T) {
	g := &gate{release: make(chan struct{})}
	b := New(Config{MaxBatch: 1, MaxFlushes: 2}, g.flush)
	var wg sync.WaitGroup
	for v := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Do(context.Background(), v); err != nil {
				t.Errorf("Do: %v", err)
			}
		}()
	}
	eventually(t, "two flushes and four queued items", func() bool {
		_, running := g.count()
		return running == 2 && b.queued() == 4
	})
	close(g.release)
	wg.Wait()
	if g.most != 2 {
		t.Fatalf("at most %d flushes ran at once, want 2", g.most)
	}
}

// TestEarlyReply: a reply reaches its caller at once, while the flush goes
// on with the rest of its work.
func TestEarlyReply(t *testing.T) {
	first, second := make(chan struct{}), make(chan struct{})
	flushes := 0
	b := New(Config{MaxFlushes: 1}, func(_ context.Context, items []int, reply func(int, string)) {
		flushes++ // one leader at a time (MaxFlushes 1)
		if flushes == 1 {
			<-first
			reply(0, "first")
			return
		}
		reply(0, "early")
		<-second
	})
	leader := make(chan string)
	go func() {
		out, _ := b.Do(context.Background(), 0)
		leader <- out
	}()
	eventually(t, "the first flush", func() bool { return b.queued() == 0 && b.flushing() == 1 })
	waiter := make(chan string)
	go func() {
		out, _ := b.Do(context.Background(), 1)
		waiter <- out
	}()
	eventually(t, "a queued item", func() bool { return b.queued() == 1 })
	close(first)
	// The leader flushes the waiter's item too and blocks on second; the
	// waiter has its reply already.
	if out := <-waiter; out != "early" {
		t.Fatalf("waiter got %q, want early", out)
	}
	close(second)
	if out := <-leader; out != "first" {
		t.Fatalf("leader got %q, want first", out)
	}
}

// TestContextEnds: a waiting caller whose context ends stops waiting; the
// item is still flushed.
func TestContextEnds(t *testing.T) {
	g := &gate{release: make(chan struct{})}
	b := New(Config{MaxFlushes: 1}, g.flush)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := b.Do(context.Background(), 1); err != nil {
			t.Errorf("leader Do: %v", err)
		}
	}()
	eventually(t, "the first flush", func() bool { n, _ := g.count(); return n == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan error)
	go func() {
		_, err := b.Do(ctx, 2)
		ended <- err
	}()
	eventually(t, "a queued item", func() bool { return b.queued() == 1 })
	cancel()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("Do after cancel: %v, want context.Canceled", err)
	}
	close(g.release)
	<-done
	if len(g.batches) != 2 || g.batches[1][0] != 2 {
		t.Fatalf("batches %v: the cancelled caller's item should still be flushed", g.batches)
	}
}

// TestWait: Wait returns once the running flushes, and what was queued
// behind them, are done.
func TestWait(t *testing.T) {
	g := &gate{release: make(chan struct{})}
	b := New(Config{MaxFlushes: 1}, g.flush)
	b.Wait() // idle: returns at once
	var wg sync.WaitGroup
	do := func(v int) { wg.Go(func() { _, _ = b.Do(context.Background(), v) }) }
	// One item first, so that it alone is in the first flush (callers
	// arriving together could share it), then two that queue behind it.
	do(0)
	eventually(t, "the first flush", func() bool {
		n, running := g.count()
		return n == 1 && running == 1
	})
	do(1)
	do(2)
	eventually(t, "two items queued behind it", func() bool { return b.queued() == 2 })
	waited := make(chan struct{})
	go func() {
		b.Wait()
		close(waited)
	}()
	close(g.release)
	<-waited
	if n, running := g.count(); n != 2 || running != 0 {
		t.Fatalf("after Wait: %d flushes, %d running; want 2, 0", n, running)
	}
	wg.Wait()
}

func TestFlushContext(t *testing.T) {
	var deadline time.Time
	b := New(Config{Timeout: time.Minute}, func(ctx context.Context, items []int, reply func(int, bool)) {
		deadline, _ = ctx.Deadline()
		reply(0, true)
	})
	start := time.Now()
	if _, err := b.Do(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if !deadline.After(start) || deadline.After(time.Now().Add(time.Minute)) {
		t.Fatalf("flush deadline %v after the call, want a minute", deadline.Sub(start))
	}
}

func TestMissingReplyPanics(t *testing.T) {
	b := New(Config{}, func(context.Context, []int, func(int, int)) {})
	defer func() {
		if recover() == nil {
			t.Fatal("a flush that does not reply should panic")
		}
	}()
	_, _ = b.Do(context.Background(), 1)
}
