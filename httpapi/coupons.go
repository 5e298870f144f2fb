package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"couponpush/abuse"
	"couponpush/coupon"
	"couponpush/template"
)

// couponRoutes are the claim and coupon endpoints of CONTRACT.md, plus
// POST /v1/templates/{id}/stock (an extension: add stock to a live
// template). None without Config.Coupons.
func couponRoutes() []route {
	return []route{
		{"POST /v1/templates/{template_id}/claims", users, (*api).claim},
		{"POST /v1/templates/{template_id}/stock", operators, (*api).addStock},
		{"POST /v1/coupons/{coupon_id}/lock", users, (*api).lockCoupon},
		{"POST /v1/coupons/{coupon_id}/unlock", users, (*api).unlockCoupon},
		{"POST /v1/coupons/{coupon_id}/redeem", users, (*api).redeemCoupon},
		{"GET /v1/users/{user_id}/coupons", users, (*api).listCoupons},
	}
}

// prepare credits a new template's stock to Redis; on failure the
// template stands and reconcile credits it later, so this only logs.
func (a *api) prepare(r *http.Request, t template.Template) template.Template {
	p, err := a.cfg.Coupons.Prepare(r.Context(), t)
	if err != nil {
		a.log.WarnContext(r.Context(), "credit new template stock; reconcile will", "template_id", t.ID, "err", err)
		return t
	}
	return p
}

// body reads and decodes a request body; it writes the error answer and
// returns false when there is none to use.
func (a *api) body(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, e := readBody(w, r, a.cfg.MaxBodyBytes)
	if e != nil {
		writeAPIError(w, e)
		return nil, false
	}
	return b, true
}

// ClaimOutcomes are the outcomes Config.OnClaim is told: issued (201),
// replayed (200: the same request_id again), the CONTRACT error codes of a
// claim, bad_request for any malformed request, and other for the rest
// (forbidden, internal). The list is closed, so a metric labelled by it
// stays bounded.
var ClaimOutcomes = []string{
	"issued", "replayed", "sold_out", "limit_reached", "not_started", "ended", "request_conflict", "rate_limited",
	"blocked", "unavailable", "outcome_unknown", "claim_in_progress", "bad_request", "template_not_found", "other",
}

// claimOutcome is the outcome of a claim answered status with error code
// code ("" for a success), one of ClaimOutcomes.
func claimOutcome(status int, code string) string {
	switch {
	case status == http.StatusCreated:
		return "issued"
	case status == http.StatusOK:
		return "replayed"
	case code == "invalid_json" || code == "invalid_argument" || code == "body_too_large" || code == "unsupported_media_type":
		return "bad_request"
	case slices.Contains(ClaimOutcomes, code):
		return code
	}
	return "other"
}

// outcomeWriter remembers the status and error code a handler answered;
// writeAPIError fills code.
type outcomeWriter struct {
	http.ResponseWriter
	status int
	code   string
}

func (w *outcomeWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (a *api) claim(w http.ResponseWriter, r *http.Request) {
	if a.cfg.OnClaim != nil {
		ow := &outcomeWriter{ResponseWriter: w}
		defer func() { a.cfg.OnClaim(claimOutcome(ow.status, ow.code)) }()
		w = ow
	}
	id, e := pathID(r, "template_id")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	b, ok := a.body(w, r)
	if !ok {
		return
	}
	user, rid, e := decodeClaim(b)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if e := a.authorizeUser(r, user); e != nil {
		writeAPIError(w, e)
		return
	}
	if e := a.admit(r, abuse.Claim, user); e != nil {
		writeAPIError(w, e)
		return
	}
	c, created, err := a.cfg.Coupons.Claim(r.Context(), id, user, rid)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, couponBody{Coupon: couponOut(c)})
}

func (a *api) addStock(w http.ResponseWriter, r *http.Request) {
	id, e := pathID(r, "template_id")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	b, ok := a.body(w, r)
	if !ok {
		return
	}
	n, e := decodeStock(b)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	t, err := a.cfg.Coupons.AddStock(r.Context(), id, n)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, templateOut(t))
}

type couponAction func(ctx context.Context, userID, couponID int64, orderID string) (coupon.Coupon, error)

func (a *api) couponAction(w http.ResponseWriter, r *http.Request, act couponAction) {
	id, e := pathID(r, "coupon_id")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	b, ok := a.body(w, r)
	if !ok {
		return
	}
	user, order, e := decodeOrder(b)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if e := a.authorizeUser(r, user); e != nil {
		writeAPIError(w, e)
		return
	}
	c, err := act(r.Context(), user, id, order)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, couponBody{Coupon: couponOut(c)})
}

func (a *api) lockCoupon(w http.ResponseWriter, r *http.Request) {
	a.couponAction(w, r, a.cfg.Coupons.Lock)
}

func (a *api) unlockCoupon(w http.ResponseWriter, r *http.Request) {
	a.couponAction(w, r, a.cfg.Coupons.Unlock)
}

func (a *api) redeemCoupon(w http.ResponseWriter, r *http.Request) {
	a.couponAction(w, r, a.cfg.Coupons.Redeem)
}

func (a *api) listCoupons(w http.ResponseWriter, r *http.Request) {
	user, e := pathID(r, "user_id")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if e := a.authorizeUser(r, user); e != nil {
		writeAPIError(w, e)
		return
	}
	st, e := statusQuery(r)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	cs, err := a.cfg.Coupons.List(r.Context(), user, st)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, couponsBody{Coupons: each(cs, couponOut)})
}

type couponJSON struct {
	ID         int64     `json:"id"`
	TemplateID int64     `json:"template_id"`
	UserID     int64     `json:"user_id"`
	RequestID  string    `json:"request_id"`
	Status     string    `json:"status"`
	OrderID    string    `json:"order_id,omitempty"`
	ExpiresAt  jsonTime  `json:"expires_at"`
	ClaimedAt  jsonTime  `json:"claimed_at"`
	UsedAt     *jsonTime `json:"used_at,omitempty"`
}

type couponBody struct {
	Coupon couponJSON `json:"coupon"`
}

type couponsBody struct {
	Coupons []couponJSON `json:"coupons"`
}

func couponOut(c coupon.Coupon) couponJSON {
	return couponJSON{ID: c.ID, TemplateID: c.TemplateID, UserID: c.UserID, RequestID: c.RequestID, Status: string(c.Status),
		OrderID: c.OrderID, ExpiresAt: jsonTime(c.ExpiresAt), ClaimedAt: jsonTime(c.ClaimedAt), UsedAt: optTime(c.UsedAt)}
}

// couponErrors maps the coupon sentinels to their CONTRACT answers.
var couponErrors = []struct {
	err    error
	status int
	code   string
	msg    string
}{
	{coupon.ErrSoldOut, http.StatusConflict, "sold_out", "the template has no stock left"},
	{coupon.ErrLimitReached, http.StatusConflict, "limit_reached", "the user holds the template's per-user limit"},
	{coupon.ErrNotStarted, http.StatusConflict, "not_started", "claiming has not started (grab_start is ahead)"},
	{coupon.ErrEnded, http.StatusConflict, "ended", "claiming has ended (grab_end has passed)"},
	{coupon.ErrRequestConflict, http.StatusConflict, "request_conflict", "the request_id was used by another user"},
	{coupon.ErrClaimInProgress, http.StatusConflict, "claim_in_progress", "a claim with this request_id is still in progress; retry it shortly"},
	{coupon.ErrOutcomeUnknown, http.StatusServiceUnavailable, "outcome_unknown", "the claim's outcome is not known yet; retry with the same request_id"},
	{coupon.ErrStockUnavailable, http.StatusServiceUnavailable, "unavailable", "the template's stock is unavailable; retry later"},
	{coupon.ErrCouponNotFound, http.StatusNotFound, "coupon_not_found", "no such coupon for this user"},
	{coupon.ErrExpired, http.StatusConflict, "expired", "the coupon has expired"},
	{coupon.ErrAlreadyUsed, http.StatusConflict, "already_used", "the coupon was already used"},
	{coupon.ErrLocked, http.StatusConflict, "locked", "the coupon is locked for another order"},
}

// couponError answers err if it is a coupon sentinel and reports whether
// it did.
func couponError(w http.ResponseWriter, err error) bool {
	for _, ce := range couponErrors {
		if errors.Is(err, ce.err) {
			if ce.status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter/time.Second)))
			}
			writeError(w, ce.status, ce.code, ce.msg)
			return true
		}
	}
	return false
}
