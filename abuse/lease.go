package abuse

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Leased tokens: a subject that sends many requests a second (an IP behind
// a carrier's NAT: every request of its users is one key on one Redis slot)
// would cost one limit script per request. Instead, a Guard takes several
// of its tokens in one script call and admits the next requests from them
// locally, for at most Config.Lease after it asked. Tokens it does not use
// in that time are lost, never handed back, and every grant leaves Lease's
// worth of the rate (Rate × Lease) of the burst unused (limitScript's
// reserve), so that tokens granted up to Lease before a window and used in
// it never let more through than the limit allows:
//
//	used in [a, b] ≤ granted in [a-Lease, b] ≤ (Burst - Rate×Lease) + Rate×(b-a+Lease)
//	             = Burst + Rate×(b-a)
//
// So leasing only ever makes a limit stricter. It applies to a limit whose
// rate gives at least two tokens a lease (Rate × Lease ≥ 2: the IP limits);
// the others (a user's few a second) take one token a request at once, with
// no reserve, exactly as without leasing.
//
// How many tokens a Guard asks for follows the subject's demand: one at
// first; twice as many as the last grant when that ran out before its
// lease ended; what was used when it ended with tokens left. At most one
// ask of more than one token per subject is on the wire at a time, and
// the subject's other requests meanwhile wait for its answer (as long as
// their contexts let them) and are admitted from what it got: a flood of
// concurrent requests takes one lease, not one script call each.

// Bounds of the leased tokens.
const (
	// MaxLease is the longest Config.Lease.
	MaxLease = time.Second
	// maxLeased is the most tokens one ask takes.
	maxLeased = 256
	// maxPools is the most subjects a Guard remembers leases of; beyond
	// it, a new subject takes one token a request until old ones expire.
	maxPools = 4096
	// poolMemory is how long after its lease ended a subject's demand is
	// remembered.
	poolMemory = time.Second
)

// leaseCap is how many tokens one ask for a subject of limit l may take
// under lease d: 0 when the limit is not leased (under two tokens a lease).
func leaseCap(l Limit, d time.Duration) int {
	n := int(float64(l.Rate) * d.Seconds())
	if n < 2 {
		return 0
	}
	return min(n, maxLeased)
}

// CheckLease reports a lease d that would hold over half of limit l's
// burst (Rate × d tokens), for a limit it leases.
func CheckLease(l Limit, d time.Duration) error {
	if held := float64(l.Rate) * d.Seconds(); leaseCap(l, d) > 0 && held > float64(l.Burst)/2 {
		return fmt.Errorf("a lease of %v holds %.0f tokens of a rate of %d, over half the burst %d; shorten the lease or raise the burst",
			d, held, l.Rate, l.Burst)
	}
	return nil
}

type poolKey struct {
	rule Rule
	id   string
}

// pool is one subject's leased tokens.
type pool struct {
	tokens int       // left to admit locally
	until  time.Time // when they are lost (this process's clock)
	used   int       // admitted since the last grant, the grant's own included
	want   int       // tokens the next ask takes
	// asked is closed when the ask of more than one token on the wire is
	// answered (nil: none is).
	asked chan struct{}
}

// leases are a Guard's leased tokens. It is safe for concurrent use.
type leases struct {
	d      time.Duration
	mu     sync.Mutex
	pools  map[poolKey]*pool
	swept  time.Time
	served atomic.Int64 // requests admitted from leased tokens
}

func newLeases(d time.Duration) *leases {
	return &leases{d: d, pools: make(map[poolKey]*pool)}
}

// take admits one request of k from a leased token (local true), or says
// how many tokens to ask Redis for (want; cap bounds it), or, while
// another request's ask for several is on the wire, returns a channel
// closed when it is answered, to take again then. An ask of more than one
// must be answered with grant.
func (ls *leases) take(k poolKey, cap int, now time.Time) (local bool, want int, wait <-chan struct{}) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	p := ls.pools[k]
	if p == nil {
		return false, 1, nil
	}
	if p.tokens > 0 && now.Before(p.until) {
		p.tokens--
		p.used++
		ls.served.Add(1)
		return true, 0, nil
	}
	if p.asked != nil {
		return false, 0, p.asked
	}
	if now.Before(p.until) { // ran out before the lease ended: more
		p.want = max(2, 2*p.used)
	} else { // what the last lease served, as a guess of the next
		p.want = max(1, p.used)
	}
	p.want = min(p.want, cap)
	if p.want > 1 {
		p.asked = make(chan struct{})
	}
	return false, p.want, nil
}

// admit takes a leased token of k (want 0) or says how many to ask for,
// waiting out another request's ask on the wire as long as ctx lets it.
func (ls *leases) admit(ctx context.Context, k poolKey, cap int) (want int, err error) {
	for {
		local, want, wait := ls.take(k, cap, time.Now())
		switch {
		case local:
			return 0, nil
		case wait == nil:
			return want, nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
}

// grant records that an ask of want tokens for k, sent at sent, got got of
// them (0: refused, or no answer); one of them admits the request that
// asked, the rest are the subject's for the lease.
func (ls *leases) grant(k poolKey, want, got int, sent, now time.Time) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	p := ls.pools[k]
	if p != nil && want > 1 && p.asked != nil {
		// Wakes the requests waiting on this ask once the lock is let go:
		// they take from what it got, or one of them asks again.
		close(p.asked)
		p.asked = nil
	}
	if got <= 0 {
		if p != nil && want > 1 {
			// At the limit: the next ask is for one (what a lease still
			// holds stays the subject's).
			p.used = 0
			if p.tokens == 0 {
				p.until = now
			}
		}
		return
	}
	if p == nil {
		if p = ls.newPool(k, now); p == nil {
			return
		}
	}
	until := sent.Add(ls.d)
	if p.tokens > 0 && now.Before(p.until) {
		// Tokens of an earlier grant are left: add these, lost no later
		// than those (a lease never outlives its own grant).
		p.tokens += got - 1
		p.until = minTime(p.until, until)
		p.used++
		return
	}
	p.tokens, p.until, p.used = got-1, until, 1
}

// newPool makes k's pool, or returns nil when maxPools subjects are
// remembered even after forgetting those whose lease ended poolMemory ago
// (looked for at most once a lease, so a flood of new subjects costs no
// sweep per request).
func (ls *leases) newPool(k poolKey, now time.Time) *pool {
	if len(ls.pools) >= maxPools && now.Sub(ls.swept) >= ls.d {
		ls.swept = now
		for key, p := range ls.pools {
			if p.asked == nil && now.Sub(p.until) > poolMemory {
				delete(ls.pools, key)
			}
		}
	}
	if len(ls.pools) >= maxPools {
		return nil
	}
	p := &pool{want: 1}
	ls.pools[k] = p
	return p
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
