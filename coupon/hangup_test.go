package coupon

import (
	"context"
	"errors"
	"testing"
	"time"

	"couponpush/internal/enginetest"
)

// TestClaimCallerHangsUp: a caller that goes away before the MySQL write
// leaves no reservation and no hold behind (not even for reconcile); one
// that goes away while the write is in flight gets no answer, the write
// completes and settles, and a retry with the same request_id gets the
// coupon, issued once.
func TestClaimCallerHangsUp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		step    string
		written bool
	}{
		{StepReserved, false},
		{StepTaken, false},
		{StepWriting, true},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			t.Parallel()
			type hangUp struct{}
			f := newFixture(t, nil, func(c *Config) {
				c.Step = func(ctx context.Context, step string) {
					if cancel, ok := ctx.Value(hangUp{}).(context.CancelFunc); ok && step == tt.step {
						cancel()
					}
				}
			})
			t.Cleanup(f.svc.Stop)
			tm := f.liveTemplate(t, 5, 1, 2)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ctx = context.WithValue(ctx, hangUp{}, cancel)
			_, _, err := f.svc.Claim(ctx, tm.ID, 1, "r1")
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("claim after hang-up: %v; want context.Canceled", err)
			}
			if tt.written {
				enginetest.Eventually(t, "the write in flight to complete", 30*time.Second, func() bool {
					return f.issued(t, tm.ID) == 1 && f.holds(t, tm) == 0
				})
			} else {
				left, err := f.svc.Remaining(context.Background(), tm)
				if err != nil || left != 5 || f.holds(t, tm) != 0 {
					t.Fatalf("after the hang-up: %d left (%v), %d holds; want 5 and none", left, err, f.holds(t, tm))
				}
				res, err := f.rdb.HGet(context.Background(), f.svc.keys.user(tm.ID, 1), "r:r1").Result()
				if err == nil {
					t.Fatalf("the reservation stayed: %q", res)
				}
			}
			// A retry converges: one coupon for the request, per-user limit 1 kept.
			cp, created, err := f.svc.Claim(context.Background(), tm.ID, 1, "r1")
			if err != nil || created == tt.written {
				t.Fatalf("retry: %+v created=%v err=%v; want created=%v", cp, created, err, !tt.written)
			}
			if n := f.issued(t, tm.ID); n != 1 {
				t.Fatalf("%d coupons issued; want 1", n)
			}
			f.checkBooks(t, tm)
		})
	}
}
