package abuse

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestLeaseAsksFollowDemand(t *testing.T) {
	t.Parallel()
	const d = 20 * time.Millisecond
	ls := newLeases(d)
	k := poolKey{Rule{Claim, IP}, "192.0.2.1"}
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

	// A new subject asks for one; once it asks again within the lease it
	// wants twice what it used, and is served locally from what it got.
	if local, want, _ := ls.take(k, 8, at(0)); local || want != 1 {
		t.Fatalf("first take: local %v want %d, want an ask of 1", local, want)
	}
	ls.grant(k, 1, 1, at(0), at(1))
	local, want, _ := ls.take(k, 8, at(2))
	if local || want != 2 {
		t.Fatalf("take within the lease, none left: local %v want %d, want an ask of 2", local, want)
	}
	// Meanwhile another request waits for that ask: one big ask at a time.
	_, _, wait := ls.take(k, 8, at(2))
	if wait == nil {
		t.Fatal("take while an ask is on the wire did not wait for it")
	}
	ls.grant(k, 2, 2, at(2), at(3)) // one for the asker, one leased
	select {
	case <-wait:
	default:
		t.Fatal("the answer to the ask did not end the wait")
	}
	if local, _, _ := ls.take(k, 8, at(4)); !local {
		t.Fatal("a leased token was not used")
	}
	// Used since the last grant: the asker's own token and the leased one.
	if local, want, _ := ls.take(k, 8, at(5)); local || want != 4 {
		t.Fatalf("take after the lease ran out: local %v want %d, want twice the 2 used", local, want)
	}
	ls.grant(k, 4, 4, at(5), at(6))

	// Leased tokens are lost when the lease ends, counted from the ask.
	for i := range 2 {
		if local, _, _ := ls.take(k, 8, at(10+i)); !local {
			t.Fatalf("leased token %d of 3 was not used", i+1)
		}
	}
	if local, want, _ := ls.take(k, 8, at(5+20)); local || want != 3 {
		t.Fatalf("take when the lease had ended: local %v want %d, want an ask of the 3 it used", local, want)
	}
	// That ask was answered with a refusal: back to one.
	ls.grant(k, 3, 0, at(25), at(26))
	if local, want, _ := ls.take(k, 8, at(27)); local || want != 1 {
		t.Fatalf("take after a refusal: local %v want %d, want an ask of 1", local, want)
	}
	if got := ls.served.Load(); got != 3 {
		t.Errorf("served %d locally, want 3", got)
	}
}

func TestLeaseLeftoversNeverOutliveTheirGrant(t *testing.T) {
	t.Parallel()
	const d = 20 * time.Millisecond
	ls := newLeases(d)
	k := poolKey{Rule{Claim, IP}, "192.0.2.1"}
	t0 := time.Unix(1000, 0)
	ls.grant(k, 1, 4, t0, t0)                          // 3 leased until t0+20ms
	ls.grant(k, 1, 4, t0.Add(15*time.Millisecond), t0) // 3 more, still lost at t0+20ms
	for i := range 6 {
		if local, _, _ := ls.take(k, 8, t0.Add(19*time.Millisecond)); !local {
			t.Fatalf("token %d of 6 not served", i+1)
		}
	}
	ls.grant(k, 1, 4, t0.Add(19*time.Millisecond), t0.Add(19*time.Millisecond))
	if local, _, _ := ls.take(k, 8, t0.Add(21*time.Millisecond)); !local {
		t.Fatal("a token of the newest grant, within its lease, was not served")
	}
	if local, _, _ := ls.take(k, 8, t0.Add(40*time.Millisecond)); local {
		t.Fatal("a token was served after its lease")
	}
}

func TestLeasePoolsAreBounded(t *testing.T) {
	t.Parallel()
	const d = 20 * time.Millisecond
	ls := newLeases(d)
	t0 := time.Unix(1000, 0)
	for i := range maxPools + 10 {
		k := poolKey{Rule{Claim, IP}, string(rune('a'+i%26)) + time.Duration(i).String()}
		ls.grant(k, 1, 1, t0, t0)
	}
	if n := len(ls.pools); n != maxPools {
		t.Fatalf("%d pools after %d subjects, want the bound %d", n, maxPools+10, maxPools)
	}
	// Once their leases are long over, old subjects make room for new ones.
	later := t0.Add(d + poolMemory + time.Millisecond)
	ls.grant(poolKey{Rule{Claim, IP}, "new"}, 1, 1, later, later)
	if _, ok := ls.pools[poolKey{Rule{Claim, IP}, "new"}]; !ok || len(ls.pools) != 1 {
		t.Fatalf("%d pools after the sweep, want only the new subject's", len(ls.pools))
	}
}

func TestLeaseConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{
		{Prefix: "p", Lease: -time.Millisecond},
		{Prefix: "p", Lease: MaxLease + time.Millisecond},
		{Prefix: "p", Lease: 100 * time.Millisecond, Limits: map[Rule]Limit{{Claim, IP}: {Rate: 1000, Burst: 150}}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: valid, want an error", c)
		}
	}
	ok := Config{Prefix: "p", Lease: 100 * time.Millisecond, Limits: map[Rule]Limit{
		{Claim, IP}: {Rate: 1000, Burst: 200}, {Claim, User}: {Rate: 3, Burst: 1}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("%+v: %v", ok, err)
	}
}

// TestLeasedLimitIsNeverLooser floods one IP through two guards (two
// workers) with leasing on: what they admit together stays within the
// limit over the flood, and most of it was admitted from leased tokens.
func TestLeasedLimitIsNeverLooser(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, _ redis.UniversalClient, guard func(func(*Config)) *Guard) {
		const rate, burst = 2000, 200
		var told atomic.Int64 // OnLeased calls
		limited := func(c *Config) {
			c.Limits = map[Rule]Limit{{Claim, IP}: {Rate: rate, Burst: burst}}
			c.Lease = 20 * time.Millisecond // up to 40 tokens an ask
			c.OnLeased = func(a Action, k Kind) {
				if a != Claim || k != IP {
					t.Errorf("OnLeased(%s, %s), want claim by ip", a, k)
				}
				told.Add(1)
			}
		}
		guards := []*Guard{guard(limited), guard(limited)}
		ctx := context.Background()
		var admitted, refused atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		begin := time.Now()
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g := guards[i%2]
				for {
					select {
					case <-stop:
						return
					default:
					}
					err := g.Admit(ctx, Claim, 0, ip1)
					var r *Refusal
					switch {
					case err == nil:
						admitted.Add(1)
					case errors.As(err, &r) && errors.Is(err, ErrLimited):
						if r.Kind != IP || r.RetryAfter <= 0 || r.RetryAfter > time.Second {
							t.Errorf("refusal %+v, want by ip with a retry within 1s", r)
						}
						refused.Add(1)
					default:
						t.Errorf("Admit: %v", err)
						return
					}
				}
			}()
		}
		// Run until each guard served some locally and the flood went well
		// past the limit, or give up.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && (refused.Load() < 2*burst || time.Since(begin) < 500*time.Millisecond ||
			guards[0].leases.served.Load() == 0 || guards[1].leases.served.Load() == 0) {
			time.Sleep(10 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		elapsed := time.Since(begin)
		served := guards[0].leases.served.Load() + guards[1].leases.served.Load()
		n, most := admitted.Load(), int64(burst+rate*elapsed.Seconds())
		t.Logf("in %v: %d admitted (%d from leased tokens), %d refused; the limit allows at most %d",
			elapsed.Round(time.Millisecond), n, served, refused.Load(), most)
		if n > most {
			t.Errorf("admitted %d, over the limit's %d in %v", n, most, elapsed)
		}
		if refused.Load() < 2*burst {
			t.Errorf("only %d refused: the flood never went past the limit", refused.Load())
		}
		if told.Load() != served {
			t.Errorf("OnLeased was told of %d requests, the leases served %d", told.Load(), served)
		}
		if served == 0 || guards[0].leases.served.Load() == 0 || guards[1].leases.served.Load() == 0 {
			t.Errorf("leased tokens served %d and %d requests, want some on each guard",
				guards[0].leases.served.Load(), guards[1].leases.served.Load())
		}
		// Stricter, but not by much: tokens are lost only when a lease
		// ends unused, which a flood hardly lets happen.
		if least := int64(rate * elapsed.Seconds() / 4); n < least {
			t.Errorf("admitted %d, under a quarter of the limit's rate over %v (%d)", n, elapsed, least)
		}
	})
}

// TestSlowLimitIsNotLeased: a limit whose rate gives under two tokens a
// lease asks Redis every time, with its whole burst.
func TestSlowLimitIsNotLeased(t *testing.T) {
	t.Parallel()
	onEngines(t, func(t *testing.T, rdb redis.UniversalClient, guard func(func(*Config)) *Guard) {
		g := guard(func(c *Config) {
			c.Limits = map[Rule]Limit{{Claim, User}: {Rate: 1, Burst: 5}}
			c.Lease = time.Second
		})
		admitted := 0
		for i := range 12 {
			if err := g.Admit(context.Background(), Claim, 7, ip1); err == nil {
				admitted++
			} else {
				refusal(t, err, ErrLimited)
			}
			if i == 0 {
				settle(t, rdb, g, Claim, UserSubject(7))
			}
		}
		if admitted != 5 || g.leases.served.Load() != 0 {
			t.Errorf("admitted %d of 12 (%d from leased tokens), want the burst 5, none leased", admitted, g.leases.served.Load())
		}
	})
}

func TestLeaseWaitersTakeFromTheAsk(t *testing.T) {
	t.Parallel()
	ls := newLeases(time.Hour) // nothing expires during the test
	k := poolKey{Rule{Claim, IP}, "192.0.2.1"}
	now := time.Now()
	ls.grant(k, 1, 1, now, now)
	if _, want, _ := ls.take(k, 8, now); want != 2 {
		t.Fatalf("want %d, want an ask of 2", want)
	}
	// Two requests wait for that ask; it gets 3 tokens: one for the asker,
	// one for each waiter.
	got := make(chan int, 2)
	for range 2 {
		go func() {
			want, err := ls.admit(t.Context(), k, 8)
			if err != nil {
				t.Error(err)
			}
			got <- want
		}()
	}
	// A waiter whose context ends stops waiting.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := ls.admit(ctx, k, 8); !errors.Is(err, context.Canceled) {
		t.Fatalf("admit with an ended context: %v, want context.Canceled", err)
	}
	ls.grant(k, 2, 3, now, time.Now())
	for range 2 {
		if want := <-got; want != 0 {
			t.Errorf("a waiter was told to ask for %d, want 0 (admitted from the ask's tokens)", want)
		}
	}
	if n := ls.served.Load(); n != 2 {
		t.Errorf("served %d locally, want 2", n)
	}
}
