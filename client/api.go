package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
)

// id writes an id for a path.
func id(n int64) string { return strconv.FormatInt(n, 10) }

// jsonBody encodes a request body.
func jsonBody(method, path string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%s %s: encode the body: %w", method, path, err)
	}
	return b, nil
}

// sendJSON sends v (nil: no body) and decodes the answer into out.
func (c *Client) sendJSON(ctx context.Context, method, path string, v, out any, opts []CallOption) (int, error) {
	var body []byte
	if v != nil {
		b, err := jsonBody(method, path, v)
		if err != nil {
			return 0, err
		}
		body = b
	}
	return c.do(ctx, c.newCall(method, path, body, opts), out)
}

// CreateTemplate creates a template: POST /v1/templates (operators).
func (c *Client) CreateTemplate(ctx context.Context, d TemplateDraft, opts ...CallOption) (Template, error) {
	var t Template
	_, err := c.sendJSON(ctx, http.MethodPost, "/v1/templates", d, &t, opts)
	return t, err
}

// Template reads a template with its live remaining: GET
// /v1/templates/{template_id} (users and operators).
func (c *Client) Template(ctx context.Context, templateID int64, opts ...CallOption) (Template, error) {
	var t Template
	_, err := c.sendJSON(ctx, http.MethodGet, "/v1/templates/"+id(templateID), nil, &t, opts)
	return t, err
}

// UpdateTemplate changes a template's name, grab window or priority: PATCH
// /v1/templates/{template_id} (operators).
func (c *Client) UpdateTemplate(ctx context.Context, templateID int64, p TemplatePatch, opts ...CallOption) (Template, error) {
	var t Template
	_, err := c.sendJSON(ctx, http.MethodPatch, "/v1/templates/"+id(templateID), p, &t, opts)
	return t, err
}

// AddStock adds n to a template's stock, live: POST
// /v1/templates/{template_id}/stock (operators). It is not idempotent and
// never resent: after an error, read the template before trying again.
func (c *Client) AddStock(ctx context.Context, templateID, n int64, opts ...CallOption) (Template, error) {
	var t Template
	_, err := c.sendJSON(ctx, http.MethodPost, "/v1/templates/"+id(templateID)+"/stock", stockRequest{Add: n}, &t, opts)
	return t, err
}

// Subscribe subscribes a user to a template's reminder: PUT
// /v1/subscriptions/{user_id}/{template_id}. created is true for 201 (new,
// or a cancelled one reactivated), false for 200 (already pending or
// sent; the subscription shows which). A PUT is idempotent.
func (c *Client) Subscribe(ctx context.Context, userID, templateID int64, r SubscribeRequest, opts ...CallOption) (s Subscription, created bool, err error) {
	var v any
	if r.LeadSeconds != 0 {
		v = r
	}
	status, err := c.sendJSON(ctx, http.MethodPut, "/v1/subscriptions/"+id(userID)+"/"+id(templateID), v, &s, opts)
	return s, status == http.StatusCreated, err
}

// Unsubscribe cancels a user's reminder: DELETE
// /v1/subscriptions/{user_id}/{template_id}. After it returns nil the
// reminder is never pushed.
func (c *Client) Unsubscribe(ctx context.Context, userID, templateID int64, opts ...CallOption) error {
	_, err := c.sendJSON(ctx, http.MethodDelete, "/v1/subscriptions/"+id(userID)+"/"+id(templateID), nil, nil, opts)
	return err
}

// Subscriptions reads one page of a user's subscriptions: GET
// /v1/subscriptions/{user_id}?after=&limit=.
func (c *Client) Subscriptions(ctx context.Context, userID int64, p Page, opts ...CallOption) (SubscriptionPage, error) {
	path := "/v1/subscriptions/" + id(userID)
	q := url.Values{}
	if p.After != 0 {
		q.Set("after", id(p.After))
	}
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var page SubscriptionPage
	_, err := c.sendJSON(ctx, http.MethodGet, path, nil, &page, opts)
	return page, err
}

// AllSubscriptions yields every subscription of a user, page after page
// of at most limit (0: the API's maximum); it stops at the first error,
// yielding it.
func (c *Client) AllSubscriptions(ctx context.Context, userID int64, limit int, opts ...CallOption) iter.Seq2[Subscription, error] {
	return func(yield func(Subscription, error) bool) {
		p := Page{Limit: limit}
		for {
			page, err := c.Subscriptions(ctx, userID, p, opts...)
			if err != nil {
				yield(Subscription{}, err)
				return
			}
			for _, s := range page.Subscriptions {
				if !yield(s, nil) {
					return
				}
			}
			if page.NextAfter == 0 {
				return
			}
			p.After = page.NextAfter
		}
	}
}

// Claim claims a coupon of a template for a user: POST
// /v1/templates/{template_id}/claims. created is true for 201, false for
// 200 (the request_id had claimed it already). An empty RequestID is
// replaced by a random one (the coupon's RequestID shows it).
//
// On 503 outcome_unknown, 409 claim_in_progress or a transport error it
// sends the same body again (see the package doc), so an error it returns
// is the last answer once Config.ClaimAttempts are spent, the context is
// done, or a Retry-After is over Config.MaxRetryWait. Any other answer is
// returned at once; 429 rate_limited only is waited out with
// WaitRateLimited.
func (c *Client) Claim(ctx context.Context, templateID int64, r ClaimRequest, opts ...CallOption) (cp Coupon, created bool, err error) {
	if r.RequestID == "" {
		r.RequestID = NewRequestID()
	}
	path := "/v1/templates/" + id(templateID) + "/claims"
	body, err := claimBody(r)
	if err != nil {
		return Coupon{}, false, fmt.Errorf("POST %s: encode the body: %w", path, err)
	}
	k := c.newCall(http.MethodPost, path, body, opts)
	var out couponBody
	wait := c.cfg.RetryWait
	for attempt := 1; ; attempt++ {
		status, err := c.do(ctx, k, &out)
		if err == nil {
			return out.Coupon, status == http.StatusCreated, nil
		}
		if attempt >= c.cfg.ClaimAttempts || ctx.Err() != nil {
			return Coupon{}, false, err
		}
		var (
			e  *Error
			te *transportError
		)
		switch {
		case errors.As(err, &e) && (e.Code == "outcome_unknown" || e.Code == "claim_in_progress"):
			if e.RetryAfter > 0 {
				wait = e.RetryAfter
			}
		case errors.As(err, &te):
		default:
			return Coupon{}, false, err
		}
		if wait > c.cfg.MaxRetryWait {
			return Coupon{}, false, err
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return Coupon{}, false, fmt.Errorf("%w (gave up resending request_id %q: %w)", err, r.RequestID, serr)
		}
		wait = min(2*wait, c.cfg.MaxRetryWait)
	}
}

// claimBody encodes a claim by appending, not by reflection: the claim is
// the hot path of load generators. A request_id that needs JSON escaping
// goes through encoding/json.
func claimBody(r ClaimRequest) ([]byte, error) {
	b := make([]byte, 0, 32+len(r.RequestID))
	b = append(b, `{"user_id":`...)
	b = strconv.AppendInt(b, r.UserID, 10)
	b = append(b, `,"request_id":`...)
	if plain(r.RequestID) {
		b = append(b, '"')
		b = append(b, r.RequestID...)
		b = append(b, '"')
	} else {
		q, err := json.Marshal(r.RequestID)
		if err != nil {
			return nil, err
		}
		b = append(b, q...)
	}
	return append(b, '}'), nil
}

// plain reports whether s is printable ASCII that JSON (and encoding/json,
// which escapes <, > and &) writes as it is.
func plain(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// coupon sends a lock, unlock or redeem.
func (c *Client) coupon(ctx context.Context, couponID int64, action string, r OrderRequest, opts []CallOption) (Coupon, error) {
	var out couponBody
	_, err := c.sendJSON(ctx, http.MethodPost, "/v1/coupons/"+id(couponID)+"/"+action, r, &out, opts)
	return out.Coupon, err
}

// Lock locks a coupon for an order: POST /v1/coupons/{coupon_id}/lock.
// Again with the same order is a no-op.
func (c *Client) Lock(ctx context.Context, couponID int64, r OrderRequest, opts ...CallOption) (Coupon, error) {
	return c.coupon(ctx, couponID, "lock", r, opts)
}

// Unlock releases a coupon an order had locked: POST
// /v1/coupons/{coupon_id}/unlock.
func (c *Client) Unlock(ctx context.Context, couponID int64, r OrderRequest, opts ...CallOption) (Coupon, error) {
	return c.coupon(ctx, couponID, "unlock", r, opts)
}

// Redeem uses a coupon for an order: POST /v1/coupons/{coupon_id}/redeem.
func (c *Client) Redeem(ctx context.Context, couponID int64, r OrderRequest, opts ...CallOption) (Coupon, error) {
	return c.coupon(ctx, couponID, "redeem", r, opts)
}

// Coupons lists a user's coupons, of one status (CouponUnused, ...) or
// all (""): GET /v1/users/{user_id}/coupons?status=.
func (c *Client) Coupons(ctx context.Context, userID int64, status string, opts ...CallOption) ([]Coupon, error) {
	path := "/v1/users/" + id(userID) + "/coupons"
	if status != "" {
		path += "?status=" + url.QueryEscape(status)
	}
	var out couponsBody
	_, err := c.sendJSON(ctx, http.MethodGet, path, nil, &out, opts)
	return out.Coupons, err
}

// Blocks lists the blocks in effect: GET /v1/admin/blocks (operators).
func (c *Client) Blocks(ctx context.Context, opts ...CallOption) ([]Block, error) {
	var out blocksBody
	_, err := c.sendJSON(ctx, http.MethodGet, "/v1/admin/blocks", nil, &out, opts)
	return out.Blocks, err
}

// BlockUser blocks a user from claims and subscription changes: PUT
// /v1/admin/blocks/users/{user_id} (operators).
func (c *Client) BlockUser(ctx context.Context, userID int64, r BlockRequest, opts ...CallOption) (Block, error) {
	var b Block
	_, err := c.sendJSON(ctx, http.MethodPut, "/v1/admin/blocks/users/"+id(userID), r, &b, opts)
	return b, err
}

// ReleaseUser ends a user's block: DELETE /v1/admin/blocks/users/{user_id}
// (operators); ErrBlockNotFound when none is in effect.
func (c *Client) ReleaseUser(ctx context.Context, userID int64, opts ...CallOption) error {
	_, err := c.sendJSON(ctx, http.MethodDelete, "/v1/admin/blocks/users/"+id(userID), nil, nil, opts)
	return err
}

// BlockIP blocks a client IP from claims and subscription changes: PUT
// /v1/admin/blocks/ips/{ip} (operators).
func (c *Client) BlockIP(ctx context.Context, ip netip.Addr, r BlockRequest, opts ...CallOption) (Block, error) {
	var b Block
	_, err := c.sendJSON(ctx, http.MethodPut, "/v1/admin/blocks/ips/"+url.PathEscape(ip.String()), r, &b, opts)
	return b, err
}

// ReleaseIP ends a client IP's block: DELETE /v1/admin/blocks/ips/{ip}
// (operators); ErrBlockNotFound when none is in effect.
func (c *Client) ReleaseIP(ctx context.Context, ip netip.Addr, opts ...CallOption) error {
	_, err := c.sendJSON(ctx, http.MethodDelete, "/v1/admin/blocks/ips/"+url.PathEscape(ip.String()), nil, nil, opts)
	return err
}

// Healthz reports whether the process is alive: GET /healthz (nil for
// 200).
func (c *Client) Healthz(ctx context.Context, opts ...CallOption) error {
	_, err := c.sendJSON(ctx, http.MethodGet, "/healthz", nil, nil, opts)
	return err
}

// Ready reads GET /readyz. The checks come back with a 503 too, beside
// an *Error (ErrUnavailable) naming the checks that failed.
func (c *Client) Ready(ctx context.Context, opts ...CallOption) (Readiness, error) {
	k := c.newCall(http.MethodGet, "/readyz", nil, opts)
	resp, b, err := c.raw(ctx, k)
	if err != nil {
		return Readiness{}, err
	}
	var r Readiness
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return Readiness{}, c.apiError(k, resp, b)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return Readiness{}, fmt.Errorf("GET /readyz: decode the %d answer: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return r, c.apiError(k, resp, b)
	}
	return r, nil
}

// Metrics reads GET /metrics: Prometheus text. A worker without metrics
// answers ErrNotFound.
func (c *Client) Metrics(ctx context.Context, opts ...CallOption) ([]byte, error) {
	k := c.newCall(http.MethodGet, "/metrics", nil, opts)
	resp, b, err := c.raw(ctx, k)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, c.apiError(k, resp, b)
	}
	return b, nil
}
