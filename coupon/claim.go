package coupon

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"couponpush/template"
)

// reservation is a parsed user-hash entry r:<request_id>.
type reservation struct {
	raw    string
	done   bool
	slot   int
	at     int64 // pending: Redis ms of the reservation
	coupon int64 // done: the coupon id
}

func parseReservation(raw string) (reservation, error) {
	p := strings.Split(raw, "|")
	if len(p) != 3 || (p[0] != "p" && p[0] != "d") {
		return reservation{}, fmt.Errorf("coupon: malformed reservation %q", raw)
	}
	slot, err1 := strconv.Atoi(p[1])
	n, err2 := strconv.ParseInt(p[2], 10, 64)
	if err1 != nil || err2 != nil {
		return reservation{}, fmt.Errorf("coupon: malformed reservation %q", raw)
	}
	r := reservation{raw: raw, done: p[0] == "d", slot: slot}
	if r.done {
		r.coupon = n
	} else {
		r.at = n
	}
	return r, nil
}

// claim is one claim in progress.
type claim struct {
	template  template.Template
	user      int64
	requestID string
	resv      reservation
	sub       int
	seq       int64
	expiresAt time.Time
	claimedAt time.Time
	started   time.Time // monotonic, before the reservation
}

// Claim issues a coupon of template to user for requestID. It returns the
// coupon and true when this call issued it, or the coupon an earlier call
// with the same requestID issued and false (C3). Errors: ErrSoldOut,
// ErrLimitReached, ErrNotStarted, ErrEnded, ErrRequestConflict,
// template.ErrNotFound, ErrClaimInProgress, ErrOutcomeUnknown,
// ErrStockUnavailable, *template.ValidationError.
//
// The steps (each Redis step one script on one key): reserve the
// request_id and a per-user slot on the user's key; take one coupon from a
// sub-stock, trying them in a random order and skipping the ones seen
// empty, which records a hold; write the MySQL row (group-committed with
// other claims); then mark the reservation done and drop the hold. A write
// known to have failed gives the slot and the coupon back; a write whose
// outcome is unknown leaves both for reconcile.
func (s *Service) Claim(ctx context.Context, templateID, user int64, requestID string) (Coupon, bool, error) {
	if err := errors.Join(checkID("template_id", templateID), checkID("user_id", user), checkClientID("request_id", requestID)); err != nil {
		return Coupon{}, false, firstValidation(err)
	}
	t, err := s.templates.Get(ctx, templateID)
	if err != nil {
		return Coupon{}, false, err
	}
	now := s.now()
	if now.Before(t.GrabStart) {
		return Coupon{}, false, fmt.Errorf("claim template %d: %w", t.ID, ErrNotStarted)
	}
	if !now.Before(t.GrabEnd) {
		return s.claimAfterEnd(ctx, t, user, requestID)
	}
	for attempt := 0; ; attempt++ {
		c, created, stale, err := s.tryClaim(ctx, t, user, requestID, now)
		if len(stale) == 0 || attempt > 0 {
			return c, created, err
		}
		// Reservations older than the reconcile deadline stand in the
		// way: settle them as reconcile would, then try once more.
		for _, st := range stale {
			if err := s.settle(ctx, t, user, st.requestID, st.resv); err != nil {
				return Coupon{}, false, err
			}
		}
	}
}

type staleResv struct {
	requestID string
	resv      reservation
}

func (s *Service) tryClaim(ctx context.Context, t template.Template, user int64, requestID string, now time.Time) (Coupon, bool, []staleResv, error) {
	c := &claim{template: t, user: user, requestID: requestID, started: time.Now(), claimedAt: norm(now)}
	c.expiresAt = t.ValidUntil
	if t.ValidDays > 0 {
		c.expiresAt = c.claimedAt.Add(time.Duration(t.ValidDays) * 24 * time.Hour)
	}
	userKey := s.keys.user(t.ID, user)
	expiry := t.GrabEnd.Add(s.cfg.RetainAfterEnd).UnixMilli()
	res, err := s.pipe.run(ctx, reserveScript, []string{userKey}, requestID, t.PerUserLimit, expiry).StringSlice()
	if err != nil || len(res) != 3 {
		return Coupon{}, false, nil, fmt.Errorf("coupon: reserve claim %q: %w %v", requestID, ErrStockUnavailable, err)
	}
	redisNow, _ := strconv.ParseInt(res[2], 10, 64)
	switch res[0] {
	case "have":
		r, err := parseReservation(res[1])
		if err != nil {
			return Coupon{}, false, nil, err
		}
		if r.done {
			cp, err := s.getCoupon(ctx, s.db, r.coupon)
			return cp, false, nil, err
		}
		cp, err := s.byRequest(ctx, t.ID, requestID)
		switch {
		case err == nil:
			return cp, false, nil, nil
		case !errors.Is(err, sql.ErrNoRows):
			return Coupon{}, false, nil, err
		case redisNow-r.at > s.cfg.ReconcileDeadline.Milliseconds():
			return Coupon{}, false, []staleResv{{requestID, r}}, fmt.Errorf("claim %q: %w", requestID, ErrClaimInProgress)
		}
		return Coupon{}, false, nil, fmt.Errorf("claim %q: %w", requestID, ErrClaimInProgress)
	case "limit":
		stale, err := s.staleReservations(ctx, userKey, redisNow)
		if err != nil {
			return Coupon{}, false, nil, err
		}
		return Coupon{}, false, stale, fmt.Errorf("claim template %d user %d: %w", t.ID, user, ErrLimitReached)
	}
	slot, _ := strconv.Atoi(res[1])
	c.resv = reservation{raw: "p|" + res[1] + "|" + res[2], slot: slot, at: redisNow}

	s.step(ctx, StepReserved)
	if err := s.take(ctx, c); err != nil {
		if ctx.Err() != nil {
			// The caller went away mid-take: a hold may stand unseen.
			s.abandon(c)
		} else {
			s.unreserve(c)
		}
		return Coupon{}, false, nil, err
	}
	s.step(ctx, StepTaken)
	if err := ctx.Err(); err != nil {
		// The caller went away before the write: give the coupon and the
		// slot back now rather than leave them for reconcile.
		s.unreserve(c)
		s.giveback(c)
		return Coupon{}, false, nil, fmt.Errorf("claim %q: the caller went away before the write: %w", requestID, err)
	}
	// From here the write completes and settles whether or not the caller
	// stays; a caller that leaves is answered by its own deadline.
	done := make(chan claimResult, 1)
	err = s.finish.Do(ctx, func(wctx context.Context) error {
		s.step(ctx, StepWriting)
		done <- s.write(wctx, c, now)
		return nil
	})
	if err != nil {
		return Coupon{}, false, nil, fmt.Errorf("%w: claim %q: %w", ErrOutcomeUnknown, requestID, err)
	}
	r := <-done
	return r.coupon, r.created, nil, r.err
}

// claimResult is what a claim's write decided.
type claimResult struct {
	coupon  Coupon
	created bool
	err     error
}

// write writes claim c and settles its slot and hold by the outcome.
func (s *Service) write(ctx context.Context, c *claim, now time.Time) claimResult {
	t, user, requestID := c.template, c.user, c.requestID
	out := s.writer.write(ctx, c)
	switch {
	case out.err == nil:
		cp := Coupon{ID: out.id, TemplateID: t.ID, UserID: user, RequestID: requestID, Status: Unused,
			ExpiresAt: c.expiresAt, ClaimedAt: c.claimedAt, UpdatedAt: c.claimedAt}
		if !now.Before(cp.ExpiresAt) {
			cp.Status = Expired
		}
		return claimResult{coupon: cp, created: true}
	case out.known:
		// Nothing was written: give the slot and the coupon back.
		s.unreserve(c)
		s.giveback(c)
		if out.existing != nil {
			if out.existing.UserID == user {
				return claimResult{coupon: *out.existing}
			}
			return claimResult{err: fmt.Errorf("claim %q: %w", requestID, ErrRequestConflict)}
		}
		return claimResult{err: out.err}
	}
	// Unknown outcome: the hold and the reservation stay for reconcile.
	s.log.WarnContext(ctx, "claim outcome unknown; left for reconcile", "template_id", t.ID, "user_id", user,
		"request_id", requestID, "err", out.err)
	return claimResult{err: fmt.Errorf("%w: %w", ErrOutcomeUnknown, out.err)}
}

// Steps of a claim, told to Config.Step (tests).
const (
	StepReserved = "reserved" // the slot is reserved; the take comes next
	StepTaken    = "taken"    // a coupon is held; the MySQL write comes next
	StepWriting  = "writing"  // the MySQL write is about to be sent
)

func (s *Service) step(ctx context.Context, name string) {
	if s.cfg.Step != nil {
		s.cfg.Step(ctx, name)
	}
}

// abandon gives back what a claim whose caller went away mid-take may
// hold: any hold of its request in the template's sub-stocks, then its
// slot. No write was sent, so nothing can commit after.
func (s *Service) abandon(c *claim) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := s.releaseHolds(ctx, c.template, c.user, c.requestID, false); err != nil {
		s.log.Warn("give back stock of a claim whose caller left; reconcile will", "template_id", c.template.ID,
			"request_id", c.requestID, "err", err)
	}
	s.unreserve(c)
}

// take takes one coupon from a sub-stock of c's template.
func (s *Service) take(ctx context.Context, c *claim) error {
	t := c.template
	empty := s.hinted(t)
	order := rand.Perm(t.SubStocks)
	missing := 0
	for _, i := range order {
		if empty[i] {
			continue
		}
		seq, err := s.pipe.run(ctx, takeScript, []string{s.keys.sub(t.ID, i)}, c.requestID, c.user, c.resv.slot,
			c.resv.at, s.cfg.WriteBudget.Milliseconds()).Int64()
		if err != nil {
			return fmt.Errorf("coupon: take stock of template %d: %w: %w", t.ID, ErrStockUnavailable, err)
		}
		switch seq {
		case takeEmpty:
			s.hintEmpty(t, i)
		case takeMissing:
			missing++
		case takeLate:
			return fmt.Errorf("coupon: claim %q took longer than %v: %w", c.requestID, s.cfg.WriteBudget, ErrStockUnavailable)
		case takeHeld:
			// The request holds one here already: try the next sub-stock.
		default:
			c.sub, c.seq = i, seq
			return nil
		}
	}
	if missing > 0 {
		return fmt.Errorf("coupon: template %d has %d sub-stocks missing in Redis: %w", t.ID, missing, ErrStockUnavailable)
	}
	return fmt.Errorf("claim template %d: %w", t.ID, ErrSoldOut)
}

// cleanupTimeout bounds give-backs, which run even when the request's
// context has ended; whatever they leave, reconcile settles.
const cleanupTimeout = 5 * time.Second

func (s *Service) unreserve(c *claim) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := unreserveScript.Run(ctx, s.rdb, []string{s.keys.user(c.template.ID, c.user)}, c.requestID, c.resv.raw).Err(); err != nil {
		s.log.Warn("give back a reservation; reconcile or a retry will", "template_id", c.template.ID,
			"user_id", c.user, "request_id", c.requestID, "err", err)
	}
}

func (s *Service) giveback(c *claim) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := givebackScript.Run(ctx, s.rdb, []string{s.keys.sub(c.template.ID, c.sub)}, c.requestID, c.seq).Err(); err != nil {
		s.log.Warn("give back stock; reconcile will", "template_id", c.template.ID,
			"request_id", c.requestID, "err", err)
	}
}

// staleReservations lists the user's pending reservations older than the
// reconcile deadline.
func (s *Service) staleReservations(ctx context.Context, userKey string, redisNow int64) ([]staleResv, error) {
	all, err := s.rdb.HGetAll(ctx, userKey).Result()
	if err != nil {
		return nil, fmt.Errorf("coupon: read reservations: %w", err)
	}
	var out []staleResv
	for f, v := range all {
		rid, ok := strings.CutPrefix(f, "r:")
		if !ok {
			continue
		}
		r, err := parseReservation(v)
		if err != nil || r.done || redisNow-r.at <= s.cfg.ReconcileDeadline.Milliseconds() {
			continue
		}
		out = append(out, staleResv{rid, r})
	}
	return out, nil
}

// settle decides a reservation older than the reconcile deadline (no
// write for it can still commit): if MySQL has its coupon, it is marked
// done and its hold dropped; if not, its slot and any hold's coupon are
// given back. Idempotent.
func (s *Service) settle(ctx context.Context, t template.Template, user int64, requestID string, r reservation) error {
	cp, err := s.byRequest(ctx, t.ID, requestID)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	// Another user's row may hold the request_id: then this reservation
	// never wrote, and is given back.
	found := err == nil && cp.UserID == user
	if err := s.releaseHolds(ctx, t, user, requestID, found); err != nil {
		return err
	}
	userKey := s.keys.user(t.ID, user)
	if found {
		return doneScript.Run(ctx, s.rdb, []string{userKey}, requestID, "d|"+strconv.Itoa(r.slot)+"|"+strconv.FormatInt(cp.ID, 10)).Err()
	}
	return unreserveScript.Run(ctx, s.rdb, []string{userKey}, requestID, r.raw).Err()
}

// releaseHolds drops user's hold for requestID, if any, from t's
// sub-stocks: kept as issued when written (found), else given back.
func (s *Service) releaseHolds(ctx context.Context, t template.Template, user int64, requestID string, found bool) error {
	for i := range t.SubStocks {
		key := s.keys.sub(t.ID, i)
		h, err := s.rdb.HGet(ctx, key, "h:"+requestID).Result()
		if err != nil {
			continue
		}
		hp := strings.Split(h, "|")
		if len(hp) != 4 || hp[0] != strconv.FormatInt(user, 10) {
			continue
		}
		script := givebackScript
		if found {
			script = releaseScript
		}
		if err := script.Run(ctx, s.rdb, []string{key}, requestID, hp[2]).Err(); err != nil {
			return fmt.Errorf("coupon: settle hold %q: %w", requestID, err)
		}
	}
	return nil
}

// claimAfterEnd answers a claim after grab_end: a retry of a claim that
// succeeded gets its coupon, anything else ErrEnded.
func (s *Service) claimAfterEnd(ctx context.Context, t template.Template, user int64, requestID string) (Coupon, bool, error) {
	cp, err := s.byRequest(ctx, t.ID, requestID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Coupon{}, false, fmt.Errorf("claim template %d: %w", t.ID, ErrEnded)
	case err != nil:
		return Coupon{}, false, err
	case cp.UserID != user:
		return Coupon{}, false, fmt.Errorf("claim %q: %w", requestID, ErrRequestConflict)
	}
	return cp, false, nil
}
