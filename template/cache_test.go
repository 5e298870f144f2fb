package template

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingSource counts reads and can hold them until released.
type countingSource struct {
	Source
	gets atomic.Int64
	gate chan struct{} // nil = never block
}

func (s *countingSource) Get(ctx context.Context, id int64) (Template, error) {
	s.gets.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	return s.Source.Get(ctx, id)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newStore(t, newDB(t), StoreConfig{})
	newTemplate := func(t *testing.T) Template {
		tm, err := store.Create(ctx, validDraft())
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}

	t.Run("hit within TTL, reload after", func(t *testing.T) {
		t.Parallel()
		clk := &clock{t: t0}
		src := &countingSource{Source: store}
		c := newCache(t, src, CacheConfig{TTL: 2 * time.Second, Now: clk.Now})
		tm := newTemplate(t)
		for range 3 {
			got, err := c.Get(ctx, tm.ID)
			if err != nil || got != tm {
				t.Fatalf("Get = %+v, %v", got, err)
			}
		}
		if n := src.gets.Load(); n != 1 {
			t.Fatalf("source reads = %d, want 1", n)
		}
		clk.Advance(2 * time.Second)
		if _, err := c.Get(ctx, tm.ID); err != nil {
			t.Fatal(err)
		}
		if n := src.gets.Load(); n != 2 {
			t.Fatalf("source reads after TTL = %d, want 2", n)
		}
	})

	t.Run("64 concurrent misses share one read", func(t *testing.T) {
		t.Parallel()
		src := &countingSource{Source: store, gate: make(chan struct{})}
		c := newCache(t, src, CacheConfig{})
		tm := newTemplate(t)
		const n = 64
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := c.Get(ctx, tm.ID)
				if err == nil && got != tm {
					err = errors.New("wrong template")
				}
				errs <- err
			}()
		}
		waitFor(t, "64 waiters on one load", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			call := c.calls[tm.ID]
			return call != nil && call.waiters == n
		})
		close(src.gate)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := src.gets.Load(); got != 1 {
			t.Fatalf("source reads = %d, want 1", got)
		}
	})

	t.Run("update invalidates", func(t *testing.T) {
		t.Parallel()
		c := newCache(t, store, CacheConfig{TTL: time.Hour})
		tm := newTemplate(t)
		if _, err := c.Get(ctx, tm.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Update(ctx, tm.ID, Patch{Name: ptr("new name")}); err != nil {
			t.Fatal(err)
		}
		got, err := c.Get(ctx, tm.ID)
		if err != nil || got.Name != "new name" {
			t.Fatalf("Get after Update = %+v, %v", got, err)
		}
	})

	t.Run("invalidate during a load drops its result", func(t *testing.T) {
		t.Parallel()
		src := &countingSource{Source: store, gate: make(chan struct{})}
		c := newCache(t, src, CacheConfig{TTL: time.Hour})
		tm := newTemplate(t)
		done := make(chan error, 1)
		go func() { _, err := c.Get(ctx, tm.ID); done <- err }()
		waitFor(t, "the load to start", func() bool { return src.gets.Load() == 1 })
		c.Invalidate(tm.ID)
		close(src.gate)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if c.Len() != 0 {
			t.Fatalf("a load that raced an invalidation was cached")
		}
	})

	t.Run("bounded, least recently used goes first", func(t *testing.T) {
		t.Parallel()
		src := &countingSource{Source: store}
		c := newCache(t, src, CacheConfig{MaxEntries: 2, TTL: time.Hour})
		a, b, d := newTemplate(t), newTemplate(t), newTemplate(t)
		for _, id := range []int64{a.ID, b.ID, a.ID, d.ID} { // b is least recently used when d arrives
			if _, err := c.Get(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if c.Len() != 2 {
			t.Fatalf("Len = %d, want 2", c.Len())
		}
		before := src.gets.Load()
		if _, err := c.Get(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if src.gets.Load() != before {
			t.Fatalf("a was evicted; want b evicted")
		}
		if _, err := c.Get(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		if src.gets.Load() != before+1 {
			t.Fatalf("b was still cached")
		}
	})

	t.Run("not found is not cached", func(t *testing.T) {
		t.Parallel()
		src := &countingSource{Source: store}
		c := newCache(t, src, CacheConfig{})
		for range 2 {
			if _, err := c.Get(ctx, 1<<50); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get error = %v, want ErrNotFound", err)
			}
		}
		if n := src.gets.Load(); n != 2 {
			t.Fatalf("source reads = %d, want 2", n)
		}
	})

	t.Run("a waiter's cancellation does not fail the others", func(t *testing.T) {
		t.Parallel()
		src := &countingSource{Source: store, gate: make(chan struct{})}
		c := newCache(t, src, CacheConfig{})
		tm := newTemplate(t)
		cctx, cancel := context.WithCancel(ctx)
		first := make(chan error, 1)
		go func() { _, err := c.Get(cctx, tm.ID); first <- err }()
		waitFor(t, "the load to start", func() bool { return src.gets.Load() == 1 })
		second := make(chan error, 1)
		go func() { _, err := c.Get(ctx, tm.ID); second <- err }()
		waitFor(t, "the second waiter", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.calls[tm.ID] != nil && c.calls[tm.ID].waiters == 2
		})
		cancel()
		if err := <-first; !errors.Is(err, context.Canceled) {
			t.Fatalf("first Get error = %v, want context.Canceled", err)
		}
		close(src.gate)
		if err := <-second; err != nil {
			t.Fatalf("second Get: %v", err)
		}
	})
}

// newCache is NewCache for a test's own, valid arguments.
func newCache(t testing.TB, src Source, cfg CacheConfig) *Cache {
	t.Helper()
	c, err := NewCache(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newStore is NewStore for a test's own, valid arguments.
func newStore(t testing.TB, db *sql.DB, cfg StoreConfig) *Store {
	t.Helper()
	s, err := NewStore(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
