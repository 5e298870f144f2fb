package coupon

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"couponpush/template"
)

// expiringFixture has a template whose coupons expire at exp, and two
// services over it: one whose clock reads just before exp, one just after.
func expiringFixture(t *testing.T) (f *fixture, before, after *Service, tm template.Template, exp time.Time) {
	t.Helper()
	ctx := context.Background()
	exp = time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()
	f = newFixture(t, nil)
	d := template.Draft{Name: "expiring", Type: template.Fixed, Value: 100, Stock: 10_000, PerUserLimit: ptr(100),
		GrabStart: time.Now().Add(-time.Hour), GrabEnd: time.Now().Add(30 * time.Minute), ValidUntil: &exp}
	tm, err := f.store.Create(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if tm, err = f.svc.Prepare(ctx, tm); err != nil {
		t.Fatal(err)
	}
	before = f.service(func(c *Config) { c.Now = func() time.Time { return exp.Add(-time.Millisecond) } })
	after = f.service(func(c *Config) { c.Now = func() time.Time { return exp.Add(time.Millisecond) } })
	return f, before, after, tm, exp
}

func TestLockUnlockRedeem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, _, after, tm, exp := expiringFixture(t)
	claim := func(t *testing.T, user int64, id string) Coupon {
		t.Helper()
		c, _, err := f.svc.Claim(ctx, tm.ID, user, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status != Unused || !c.ExpiresAt.Equal(exp) {
			t.Fatalf("claimed %+v, want unused until %v", c, exp)
		}
		return c
	}
	type step struct {
		op     string // lock, unlock, redeem
		user   int64
		order  string
		want   error
		status Status
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"redeem unused", []step{{"redeem", 1, "o1", nil, Used}}},
		{"double redeem", []step{{"redeem", 1, "o1", nil, Used}, {"redeem", 1, "o1", ErrAlreadyUsed, ""}, {"redeem", 1, "o2", ErrAlreadyUsed, ""}}},
		{"lock, lock again, redeem by that order", []step{{"lock", 1, "o1", nil, Locked}, {"lock", 1, "o1", nil, Locked}, {"redeem", 1, "o1", nil, Used}}},
		{"locked for another order", []step{{"lock", 1, "o1", nil, Locked}, {"lock", 1, "o2", ErrLocked, ""}, {"redeem", 1, "o2", ErrLocked, ""}, {"unlock", 1, "o2", ErrLocked, ""}}},
		{"unlock, then another order", []step{{"lock", 1, "o1", nil, Locked}, {"unlock", 1, "o1", nil, Unused}, {"unlock", 1, "o1", nil, Unused}, {"redeem", 1, "o2", nil, Used}, {"unlock", 1, "o2", ErrAlreadyUsed, ""}}},
		{"not the owner", []step{{"redeem", 2, "o1", ErrCouponNotFound, ""}, {"lock", 2, "o1", ErrCouponNotFound, ""}, {"unlock", 2, "o1", ErrCouponNotFound, ""}, {"redeem", 1, "o1", nil, Used}}},
		{"bad order id", []step{{"redeem", 1, "", nil, ""}, {"lock", 1, string(make([]rune, 65)), nil, ""}}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := claim(t, 1, rid("lock", i))
			for _, s := range tt.steps {
				op := map[string]func(context.Context, int64, int64, string) (Coupon, error){
					"lock": f.svc.Lock, "unlock": f.svc.Unlock, "redeem": f.svc.Redeem}[s.op]
				got, err := op(ctx, s.user, c.ID, s.order)
				if s.status == "" && s.want == nil {
					var ve *template.ValidationError
					if !errors.As(err, &ve) {
						t.Fatalf("%s with order %q: %v, want a *ValidationError", s.op, s.order, err)
					}
					continue
				}
				if !errors.Is(err, s.want) {
					t.Fatalf("%s by user %d order %s: %v, want %v", s.op, s.user, s.order, err, s.want)
				}
				if err == nil && got.Status != s.status {
					t.Fatalf("%s: status %s, want %s", s.op, got.Status, s.status)
				}
			}
		})
	}
	t.Run("unknown coupon", func(t *testing.T) {
		if _, err := f.svc.Redeem(ctx, 1, 1<<40, "o"); !errors.Is(err, ErrCouponNotFound) {
			t.Fatalf("redeem of no coupon: %v", err)
		}
	})
	t.Run("expired before the sweep", func(t *testing.T) {
		c := claim(t, 3, "exp")
		got, err := after.Get(ctx, 3, c.ID)
		if err != nil || got.Status != Expired {
			t.Fatalf("read after expiry: %+v, %v; want expired", got, err)
		}
		for _, op := range []func(context.Context, int64, int64, string) (Coupon, error){after.Redeem, after.Lock} {
			if _, err := op(ctx, 3, c.ID, "o"); !errors.Is(err, ErrExpired) {
				t.Fatalf("after expiry: %v, want ErrExpired", err)
			}
		}
		for st, want := range map[Status]int{Expired: 1, Unused: 0} {
			list, err := after.List(ctx, 3, st)
			if err != nil || len(list) != want {
				t.Fatalf("list %s: %d coupons, %v; want %d", st, len(list), err, want)
			}
		}
		if list, _ := f.svc.List(ctx, 3, Unused); len(list) != 1 {
			t.Fatalf("before expiry the coupon should list as unused")
		}
	})
	t.Run("unlock after expiry, before the sweep", func(t *testing.T) {
		c := claim(t, 4, "exp-locked")
		if _, err := f.svc.Lock(ctx, 4, c.ID, "o"); err != nil {
			t.Fatal(err)
		}
		// As after the sweep: an expired coupon stays expired, whatever its order.
		if _, err := after.Unlock(ctx, 4, c.ID, "o"); !errors.Is(err, ErrExpired) {
			t.Fatalf("unlock after expiry: %v, want ErrExpired", err)
		}
		if got, err := after.Get(ctx, 4, c.ID); err != nil || got.Status != Expired {
			t.Fatalf("read after the refused unlock: %+v, %v; want expired", got, err)
		}
	})
}

// TestRedeemRacesExpiry: redeems with a clock before expiry race a sweep
// with a clock after it; each coupon ends used or expired, and a redeem
// answered with success is exactly a used coupon (C5).
func TestRedeemRacesExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, before, after, tm, _ := expiringFixture(t)
	const n = 400
	ids := make([]int64, n)
	for i := range ids {
		c, _, err := f.svc.Claim(ctx, tm.ID, int64(i/100+1), rid("race", i))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = c.ID
	}
	redeemed := make([]bool, n)
	var wg sync.WaitGroup
	sweepDone := make(chan int64, 1)
	wg.Go(func() {
		total := int64(0)
		for range 5 {
			k, err := after.SweepExpired(ctx, 50)
			if err != nil {
				t.Error(err)
			}
			total += k
		}
		sweepDone <- total
	})
	for i := range ids {
		wg.Go(func() {
			_, err := before.Redeem(ctx, int64(i/100+1), ids[i], "order")
			switch {
			case err == nil:
				redeemed[i] = true
			case !errors.Is(err, ErrExpired):
				t.Errorf("redeem %d: %v", ids[i], err)
			}
		})
	}
	wg.Wait()
	swept := <-sweepDone
	var used int64
	for i, id := range ids {
		var st string
		if err := f.db.QueryRow("SELECT status FROM coupons WHERE id = ?", id).Scan(&st); err != nil {
			t.Fatal(err)
		}
		if redeemed[i] != (st == "used") || (st != "used" && st != "expired") {
			t.Fatalf("coupon %d: redeem answered %v, stored %s", id, redeemed[i], st)
		}
		if st == "used" {
			used++
		}
	}
	t.Logf("%d redeemed, %d swept", used, swept)
	if used+swept != n {
		t.Fatalf("%d used + %d swept != %d", used, swept, n)
	}
	// A second sweep finds nothing; a redeem after expiry fails.
	if k, err := after.SweepExpired(ctx, 50); err != nil || k != 0 {
		t.Fatalf("second sweep changed %d, %v", k, err)
	}
	if _, err := before.Redeem(ctx, 1, ids[0], "late"); err == nil {
		t.Fatal("a redeem after the race succeeded")
	}
}
