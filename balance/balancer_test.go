package balance

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"couponpush/internal/enginetest"
	"couponpush/queue"
)

// fakeLeaser renews as renew says; Acquire is not used by Hold.
type fakeLeaser struct {
	renew    func(ctx context.Context) error
	renewals atomic.Int64
	released atomic.Int64
}

func (f *fakeLeaser) Acquire(context.Context, int, time.Duration) (*queue.Lease, bool, error) {
	return &queue.Lease{}, true, nil
}

func (f *fakeLeaser) Renew(ctx context.Context, _ *queue.Lease, _ time.Duration) error {
	f.renewals.Add(1)
	return f.renew(ctx)
}

func (f *fakeLeaser) Release(context.Context, *queue.Lease) error {
	f.released.Add(1)
	return nil
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestHeld(t *testing.T) {
	const lease, renew = 400 * time.Millisecond, 50 * time.Millisecond
	tests := []struct {
		name  string
		renew func(ctx context.Context) error
		lost  bool // Lost closes by itself
	}{
		{"renewed", func(context.Context) error { return nil }, false},
		{"taken by another worker", func(context.Context) error { return queue.ErrLeaseLost }, true},
		{"Redis failing", func(context.Context) error { return errors.New("connection refused") }, true},
		// A renewal that never answers is cut off when the lease has
		// no time left, not when Redis's read timeout ends.
		{"Redis hung", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeLeaser{renew: tc.renew}
			b, err := New(nil, f, Config{Lease: lease, RenewEvery: renew})
			if err != nil {
				t.Fatal(err)
			}
			h := b.Hold(context.Background(), &queue.Lease{Queue: 3})
			if !h.Valid() {
				t.Fatal("a lease just taken is not valid")
			}
			if tc.lost {
				enginetest.Eventually(t, "Lost to close", 10*time.Second, func() bool { return closed(h.Lost) })
				if h.Valid() {
					t.Fatal("Valid after Lost closed")
				}
			} else {
				enginetest.Eventually(t, "a few renewals", 10*time.Second, func() bool { return f.renewals.Load() >= 3 })
				if closed(h.Lost) || !h.Valid() {
					t.Fatal("a renewed lease is lost or not valid")
				}
			}
			h.Release()
			h.Release() // idempotent
			if n := f.released.Load(); n != 1 {
				t.Fatalf("released %d times, want 1", n)
			}
		})
	}
}

// TestHeldRunsOutWithoutRenewals: a holder whose renewals have not been
// answered for a lease (as after a stop or a long pause) is not valid,
// whatever its renewal goroutine has noticed.
func TestHeldRunsOutWithoutRenewals(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	f := &fakeLeaser{renew: func(ctx context.Context) error {
		select { // the first renewal hangs past the lease
		case <-block:
		case <-ctx.Done():
		}
		return ctx.Err()
	}}
	b, err := New(nil, f, Config{Lease: 300 * time.Millisecond, RenewEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := b.Hold(context.Background(), &queue.Lease{})
	defer h.Release()
	enginetest.Eventually(t, "the lease to run out", 10*time.Second, func() bool { return !h.Valid() })
}
