package coupon

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"couponpush/internal/enginetest"
	"couponpush/template"
)

// TestClaimConcurrentInvariants: thousands of goroutines on one template,
// several Services (as several workers would be). C1: issued ==
// min(stock, demand), never more; C2: no user above the limit; C3: each
// request_id issues at most one coupon and a retry returns the same one.
func TestClaimConcurrentInvariants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		stock            int64
		users, perUser   int
		requestsPerUser  int
		wantIssued, subs int
	}{
		// demand = users * min(perUser, requestsPerUser)
		{name: "sold out: 3000 claims for 1000 coupons", stock: 1000, users: 1000, perUser: 2, requestsPerUser: 3, wantIssued: 1000, subs: 8},
		{name: "stock left: demand below stock", stock: 5000, users: 600, perUser: 3, requestsPerUser: 5, wantIssued: 1800, subs: 8},
		{name: "one sub-stock", stock: 700, users: 1000, perUser: 1, requestsPerUser: 2, wantIssued: 700, subs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			svcs := []*Service{f.svc, f.service(), f.service()}
			tm := f.liveTemplate(t, tt.stock, tt.perUser, tt.subs)
			ctx := context.Background()

			type result struct {
				user int64
				rid  string
				id   int64
				err  error
			}
			results := make(chan result, tt.users*tt.requestsPerUser)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for u := 1; u <= tt.users; u++ {
				for r := range tt.requestsPerUser {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						id := rid(u, r)
						c, created, err := svcs[(u+r)%len(svcs)].Claim(ctx, tm.ID, int64(u), id)
						if err == nil && !created {
							err = errors.New("first claim answered as a retry")
						}
						results <- result{user: int64(u), rid: id, id: c.ID, err: err}
					}()
				}
			}
			close(start)
			wg.Wait()
			close(results)

			var issued, soldOut, limited int
			ids := map[int64]string{}
			perUser := map[int64]int{}
			var won []result
			for r := range results {
				switch {
				case r.err == nil:
					issued++
					if other, dup := ids[r.id]; dup {
						t.Fatalf("coupon %d issued to requests %s and %s", r.id, other, r.rid)
					}
					ids[r.id] = r.rid
					perUser[r.user]++
					won = append(won, r)
				case errors.Is(r.err, ErrSoldOut):
					soldOut++
				case errors.Is(r.err, ErrLimitReached):
					limited++
				default:
					t.Fatalf("claim %s: %v", r.rid, r.err)
				}
			}
			t.Logf("issued %d, sold out %d, limit reached %d", issued, soldOut, limited)
			if issued != tt.wantIssued {
				t.Fatalf("issued %d coupons, want exactly %d", issued, tt.wantIssued)
			}
			if n := f.issued(t, tm.ID); n != int64(issued) {
				t.Fatalf("MySQL holds %d coupons, %d claims succeeded", n, issued)
			}
			for u, n := range perUser {
				if n > tt.perUser {
					t.Fatalf("user %d got %d coupons, limit %d", u, n, tt.perUser)
				}
			}
			if m := f.maxPerUser(t, tm.ID); m > int64(tt.perUser) {
				t.Fatalf("MySQL: a user holds %d coupons, limit %d", m, tt.perUser)
			}

			// C3: every retry, concurrent and from any Service, returns the
			// same coupon and issues nothing.
			var retries sync.WaitGroup
			var bad atomic.Int64
			for i, r := range won {
				retries.Add(1)
				go func() {
					defer retries.Done()
					c, created, err := svcs[i%len(svcs)].Claim(ctx, tm.ID, r.user, r.rid)
					if err != nil || created || c.ID != r.id || c.UserID != r.user {
						bad.Add(1)
						t.Errorf("retry of %s: coupon %d created %v err %v, want coupon %d", r.rid, c.ID, created, err, r.id)
					}
				}()
			}
			retries.Wait()
			if bad.Load() > 0 {
				t.FailNow()
			}
			if n := f.issued(t, tm.ID); n != int64(issued) {
				t.Fatalf("after retries MySQL holds %d coupons, want %d", n, issued)
			}
			f.checkBooks(t, tm)
		})
	}
}

// TestClaimDuplicateInFlight: the same request_id sent many times at once
// issues one coupon; the others get it or are told the claim is in
// progress, never a second coupon.
func TestClaimDuplicateInFlight(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	tm := f.liveTemplate(t, 10_000, 5, 8)
	ctx := context.Background()
	const requests, copies = 200, 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]map[int64]bool{}
	for r := range requests {
		for range copies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := rid(r)
				c, _, err := f.svc.Claim(ctx, tm.ID, int64(r%50+1), id)
				if errors.Is(err, ErrClaimInProgress) {
					return
				}
				if err != nil {
					t.Errorf("claim %s: %v", id, err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if got[id] == nil {
					got[id] = map[int64]bool{}
				}
				got[id][c.ID] = true
			}()
		}
	}
	wg.Wait()
	for id, cs := range got {
		if len(cs) != 1 {
			t.Fatalf("request %s got coupons %v", id, cs)
		}
	}
	// 200 requests over 50 users with limit 5: at most 4 per user can win.
	if n, m := f.issued(t, tm.ID), f.maxPerUser(t, tm.ID); n > requests || m > 5 {
		t.Fatalf("issued %d (max per user %d)", n, m)
	}
	f.checkBooks(t, tm)
}

func TestClaimRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	live := f.liveTemplate(t, 100, 1, 4)
	now := time.Now()
	mk := func(start, end time.Time) template.Template {
		tm, err := f.store.Create(ctx, template.Draft{Name: "w", Type: template.Percent, Value: 10, Stock: 5, GrabStart: start, GrabEnd: end, ValidDays: ptr(1)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Prepare(ctx, tm); err != nil {
			t.Fatal(err)
		}
		return tm
	}
	future := mk(now.Add(time.Hour), now.Add(2*time.Hour))
	past := mk(now.Add(-2*time.Hour), now.Add(-time.Hour))
	if _, _, err := f.svc.Claim(ctx, live.ID, 1, "first"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		template int64
		user     int64
		rid      string
		want     error
	}{
		{"not started", future.ID, 1, "a", ErrNotStarted},
		{"ended", past.ID, 1, "a", ErrEnded},
		{"unknown template", 1 << 40, 1, "a", template.ErrNotFound},
		{"limit reached", live.ID, 1, "second", ErrLimitReached},
		{"request_id of another user", live.ID, 2, "first", ErrRequestConflict},
		{"empty request_id", live.ID, 1, "", nil},
		{"request_id of 65 characters", live.ID, 1, string(make([]byte, 65)), nil},
		{"user 0", live.ID, 0, "a", nil},
		{"negative template", -1, 1, "a", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.svc.Claim(ctx, tt.template, tt.user, tt.rid)
			if tt.want == nil {
				var ve *template.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("Claim error %v, want a *ValidationError", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Claim error %v, want %v", err, tt.want)
			}
		})
	}
	if n := f.issued(t, live.ID); n != 1 {
		t.Fatalf("refusals wrote coupons: %d rows", n)
	}
	f.checkBooks(t, live)
}

// TestAddStockLive: a sold-out template takes more stock while claims run,
// and issues exactly what it was given.
func TestAddStockLive(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	tm := f.liveTemplate(t, 50, 1, 8)
	var wg sync.WaitGroup
	var ok atomic.Int64
	claim := func(from, to int) {
		for u := from; u < to; u++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, err := f.svc.Claim(ctx, tm.ID, int64(u), rid(u))
				switch {
				case err == nil:
					ok.Add(1)
				case !errors.Is(err, ErrSoldOut):
					t.Errorf("claim: %v", err)
				}
			}()
		}
	}
	claim(1, 200)
	wg.Wait()
	if ok.Load() != 50 {
		t.Fatalf("issued %d of 50", ok.Load())
	}
	claim(200, 600)
	got, err := f.svc.AddStock(ctx, tm.ID, 75)
	if err != nil {
		t.Fatal(err)
	}
	if got.Stock != 125 {
		t.Fatalf("stock after add = %d, want 125", got.Stock)
	}
	wg.Wait()
	// Claims that raced the add may have seen sold out, and may have left a
	// sub-stock hinted empty for HintTTL; later claims find the rest.
	next := 600
	enginetest.Eventually(t, "the added stock issued", 10*time.Second, func() bool {
		claim(next, next+50)
		next += 50
		wg.Wait()
		return ok.Load() >= 125
	})
	claim(next, next+100) // and not one more
	wg.Wait()
	if ok.Load() != 125 {
		t.Fatalf("issued %d, want 125", ok.Load())
	}
	for _, n := range []int64{0, -3, template.MaxStock} {
		var ve *template.ValidationError
		if _, err := f.svc.AddStock(ctx, tm.ID, n); !errors.As(err, &ve) {
			t.Fatalf("AddStock(%d) error %v, want a *ValidationError", n, err)
		}
	}
	if _, err := f.svc.AddStock(ctx, 1<<40, 1); !errors.Is(err, template.ErrNotFound) {
		t.Fatalf("AddStock to no template: %v", err)
	}
	f.checkBooks(t, tm)
}

// TestCouponIDsAfterCounterLoss: the Redis id counter is lost while two
// services hold blocks of ids; a claim whose id is taken fails as known
// (nothing written, stock given back) and the next one gets a fresh id.
func TestCouponIDsAfterCounterLoss(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, nil)
	a, b := f.svc, f.service()
	tm := f.liveTemplate(t, 100, 1, 2)
	seen := map[int64]string{}
	claim := func(s *Service, u int64) error {
		c, _, err := s.Claim(ctx, tm.ID, u, rid(u))
		if err == nil {
			if other, dup := seen[c.ID]; dup {
				t.Fatalf("coupon id %d given to %s and %s", c.ID, other, rid(u))
			}
			seen[c.ID] = rid(u)
		}
		return err
	}
	for u := int64(1); u <= 3; u++ {
		if err := claim(a, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.rdb.Del(ctx, a.keys.couponIDs()).Err(); err != nil {
		t.Fatal(err)
	}
	for u := int64(4); u <= 6; u++ { // b floors the counter to MySQL's largest id
		if err := claim(b, u); err != nil {
			t.Fatal(err)
		}
	}
	// a's block overlaps b's now: its next claim meets a taken id.
	if err := claim(a, 7); !errors.Is(err, ErrStockUnavailable) {
		t.Fatalf("claim with a taken id: %v, want ErrStockUnavailable", err)
	}
	if err := claim(a, 7); err != nil {
		t.Fatalf("retry after the id counter was floored again: %v", err)
	}
	if len(seen) != 7 {
		t.Fatalf("%d coupons, want 7", len(seen))
	}
	f.checkBooks(t, tm)
}
