package abuse

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestFirstTTL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rate int
		want time.Duration
	}{
		{1, 1001 * time.Millisecond},
		{3, 335 * time.Millisecond}, // 333.3 ms, rounded up, plus one
		{5, 201 * time.Millisecond},
		{1000, 2 * time.Millisecond},
		{1001, 0}, // an interval under a millisecond: always the script
		{0, 0},
	} {
		if got := firstTTL(Limit{Rate: tc.rate, Burst: 10}); got != tc.want {
			t.Errorf("firstTTL(rate %d) = %v, want %v", tc.rate, got, tc.want)
		}
	}
}

// TestFirstTokenIsAMark: a subject's first request takes its token with
// firstMark, which lives its interval and a little more; the script then
// reads the mark as that token taken.
func TestFirstTokenIsAMark(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, rdb redis.UniversalClient, guard func(func(*Config)) *Guard) {
		ctx := context.Background()
		// Burst 1: the first token is the whole burst, so the next request
		// is refused until the interval has passed.
		g := guard(func(c *Config) { c.Limits = map[Rule]Limit{{Subscribe, User}: {Rate: 2, Burst: 1}} })
		if err := g.Admit(ctx, Subscribe, 9, netip.Addr{}); err != nil {
			t.Fatal(err)
		}
		key := g.keys.limit(Subscribe, UserSubject(9))
		if v, err := rdb.Get(ctx, key).Result(); err != nil || v != firstMark {
			t.Fatalf("state after the first request: %q, %v; want the first mark %q", v, err, firstMark)
		}
		if left, err := rdb.PTTL(ctx, key).Result(); err != nil || left <= 0 || left > 501*time.Millisecond {
			t.Fatalf("the first mark lives %v (%v), want at most the interval 500ms + 1ms", left, err)
		}
		r := refusal(t, g.Admit(ctx, Subscribe, 9, netip.Addr{}), ErrLimited)
		if r.Kind != User || r.RetryAfter <= 0 || r.RetryAfter > 502*time.Millisecond {
			t.Errorf("refusal after the first token: %+v, want by user, retry within the mark's life", r)
		}
		// Another user is not touched.
		if err := g.Admit(ctx, Subscribe, 10, netip.Addr{}); err != nil {
			t.Errorf("another user: %v", err)
		}
	})
}

// TestFirstTokensAreNeverLooser floods one user through two guards: what
// they admit stays within burst + rate × elapsed, and at least the burst
// but one at once (the first token's rounding: first.go).
func TestFirstTokensAreNeverLooser(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, _ redis.UniversalClient, guard func(func(*Config)) *Guard) {
		const rate, burst = 50, 10
		limits := func(c *Config) { c.Limits = map[Rule]Limit{{Claim, User}: {Rate: rate, Burst: burst}} }
		gs := []*Guard{guard(limits), guard(limits)}
		var admitted atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		stop := start.Add(300 * time.Millisecond)
		for i := range 8 {
			wg.Go(func() {
				for time.Now().Before(stop) {
					err := gs[i%2].Admit(context.Background(), Claim, 77, netip.Addr{})
					if err == nil {
						admitted.Add(1)
					} else {
						refusal(t, err, ErrLimited)
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		got, bound := admitted.Load(), int64(burst+rate*elapsed.Seconds())
		t.Logf("admitted %d in %v, bound %d", got, elapsed, bound)
		if got > bound {
			t.Errorf("admitted %d in %v, over burst + rate × elapsed = %d", got, elapsed, bound)
		}
		if got < burst-1 {
			t.Errorf("admitted %d, under the burst %d but one", got, burst)
		}
	})
}
