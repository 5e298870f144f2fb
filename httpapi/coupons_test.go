package httpapi

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"couponpush/coupon"
	"couponpush/internal/enginetest"
	"couponpush/template"
)

// couponFixture is the API with a coupon service on the shared Redis, and
// two live templates: "hot" (stock 3, limit 2) and "later" (not started).
type couponFixture struct {
	*fixture
	svc        *coupon.Service
	hot, later int64
}

func newCouponFixture(t *testing.T) *couponFixture {
	t.Helper()
	return newCouponFixtureOf(t, nil, "")
}

// newCouponFixtureOf is newCouponFixture with an edit of the config and
// the bearer token the fixture sends (to create its templates too).
func newCouponFixtureOf(t *testing.T, edit func(*Config), token string) *couponFixture {
	t.Helper()
	var svc *coupon.Service
	f := newFixtureOf(t, func(f *fixture, c *Config) {
		if edit != nil {
			edit(c)
		}
		cache, err := template.NewCache(f.store, template.CacheConfig{})
		if err != nil {
			t.Fatal(err)
		}
		svc, err = coupon.NewService(coupon.Config{DB: f.db, Redis: enginetest.Redis(t), Prefix: enginetest.Prefix(t),
			Templates: cache, Stock: f.store, Invalidate: cache.Invalidate})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Stop)
		c.Templates = cache
		c.Coupons = svc
	})
	f.token = token
	cf := &couponFixture{fixture: f, svc: svc}
	now := time.Now().UTC()
	mk := func(start time.Time, stock, limit int) int64 {
		body := fmt.Sprintf(`{"name":"c","type":"fixed","value":100,"stock":%d,"per_user_limit":%d,"substocks":2,
"grab_start":%q,"grab_end":%q,"valid_days":1}`, stock, limit, start.Format(time.RFC3339), start.Add(2*time.Hour).Format(time.RFC3339))
		r := f.do(t, "POST", "/v1/templates", jsonCT, body)
		if r.status != 201 || r.body["remaining"].(float64) != float64(stock) || r.body["substocks"].(float64) != 2 {
			t.Fatalf("create template: %d %s", r.status, r.raw)
		}
		return int64(r.body["id"].(float64))
	}
	cf.hot = mk(now.Add(-time.Hour), 3, 2)
	cf.later = mk(now.Add(time.Hour), 3, 2)
	return cf
}

func TestCouponsAPI(t *testing.T) {
	t.Parallel()
	f := newCouponFixture(t)
	hot, later := f.hot, f.later
	claims := fmt.Sprintf("/v1/templates/%d/claims", hot)
	var first, second int64 // coupon ids, set by steps
	coupons := func() int { return f.count(t, "coupons") }

	steps := []struct {
		name       string
		method     string
		path       func() string
		ct, body   string
		wantStatus int
		wantCode   string
		wantRows   int // coupons rows after the step
		check      func(t *testing.T, r response)
	}{
		{name: "claim", method: "POST", path: func() string { return claims }, body: `{"user_id":7,"request_id":"a"}`, wantStatus: 201, wantRows: 1,
			check: func(t *testing.T, r response) {
				c := r.body["coupon"].(map[string]any)
				first = int64(c["id"].(float64))
				if c["status"] != "unused" || c["user_id"].(float64) != 7 || !msTime.MatchString(c["expires_at"].(string)) {
					t.Errorf("coupon %s", r.raw)
				}
			}},
		{name: "same request again: 200, same coupon", method: "POST", path: func() string { return claims }, body: `{"user_id":7,"request_id":"a"}`, wantStatus: 200, wantRows: 1,
			check: func(t *testing.T, r response) {
				if id := int64(r.body["coupon"].(map[string]any)["id"].(float64)); id != first {
					t.Errorf("retry returned coupon %d, want %d", id, first)
				}
			}},
		{name: "request_id of another user", method: "POST", path: func() string { return claims }, body: `{"user_id":8,"request_id":"a"}`, wantStatus: 409, wantCode: "request_conflict", wantRows: 1},
		{name: "second coupon", method: "POST", path: func() string { return claims }, body: `{"user_id":7,"request_id":"b"}`, wantStatus: 201, wantRows: 2,
			check: func(t *testing.T, r response) { second = int64(r.body["coupon"].(map[string]any)["id"].(float64)) }},
		{name: "limit reached", method: "POST", path: func() string { return claims }, body: `{"user_id":7,"request_id":"c"}`, wantStatus: 409, wantCode: "limit_reached", wantRows: 2},
		{name: "last coupon", method: "POST", path: func() string { return claims }, body: `{"user_id":9,"request_id":"c"}`, wantStatus: 201, wantRows: 3},
		{name: "sold out", method: "POST", path: func() string { return claims }, body: `{"user_id":10,"request_id":"d"}`, wantStatus: 409, wantCode: "sold_out", wantRows: 3},
		{name: "remaining 0", method: "GET", path: func() string { return fmt.Sprintf("/v1/templates/%d", hot) }, wantStatus: 200, wantRows: 3,
			check: func(t *testing.T, r response) {
				if r.body["remaining"].(float64) != 0 || r.body["issued"].(float64) != 3 {
					t.Errorf("template %s", r.raw)
				}
			}},
		{name: "rename answers the live stock", method: "PATCH", path: func() string { return fmt.Sprintf("/v1/templates/%d", hot) }, body: `{"name":"hot, renamed"}`, wantStatus: 200, wantRows: 3,
			check: func(t *testing.T, r response) {
				if r.body["name"] != "hot, renamed" || r.body["remaining"].(float64) != 0 || r.body["issued"].(float64) != 3 {
					t.Errorf("template %s", r.raw)
				}
			}},
		{name: "add stock", method: "POST", path: func() string { return fmt.Sprintf("/v1/templates/%d/stock", hot) }, body: `{"add":2}`, wantStatus: 200, wantRows: 3,
			check: func(t *testing.T, r response) {
				if r.body["remaining"].(float64) != 2 || r.body["stock"].(float64) != 5 {
					t.Errorf("template %s", r.raw)
				}
			}},
		{name: "claim the added stock", method: "POST", path: func() string { return claims }, body: `{"user_id":10,"request_id":"d"}`, wantStatus: 201, wantRows: 4},
		{name: "not started", method: "POST", path: func() string { return fmt.Sprintf("/v1/templates/%d/claims", later) }, body: `{"user_id":1,"request_id":"x"}`, wantStatus: 409, wantCode: "not_started", wantRows: 4},
		{name: "unknown template", method: "POST", path: func() string { return "/v1/templates/999999/claims" }, body: `{"user_id":1,"request_id":"x"}`, wantStatus: 404, wantCode: "template_not_found", wantRows: 4},
		{name: "malformed JSON", method: "POST", path: func() string { return claims }, body: `{"user_id":1,`, wantStatus: 400, wantCode: "invalid_json", wantRows: 4},
		{name: "unknown field", method: "POST", path: func() string { return claims }, body: `{"user_id":1,"request_id":"x","qty":2}`, wantStatus: 400, wantCode: "invalid_json", wantRows: 4},
		{name: "negative user", method: "POST", path: func() string { return claims }, body: `{"user_id":-1,"request_id":"x"}`, wantStatus: 400, wantCode: "invalid_argument", wantRows: 4},
		{name: "user as a string", method: "POST", path: func() string { return claims }, body: `{"user_id":"1","request_id":"x"}`, wantStatus: 400, wantCode: "invalid_argument", wantRows: 4},
		{name: "no request_id", method: "POST", path: func() string { return claims }, body: `{"user_id":1}`, wantStatus: 400, wantCode: "invalid_argument", wantRows: 4},
		{name: "request_id too long", method: "POST", path: func() string { return claims }, body: `{"user_id":1,"request_id":"` + strings.Repeat("é", 65) + `"}`, wantStatus: 400, wantCode: "invalid_argument", wantRows: 4},
		{name: "huge body", method: "POST", path: func() string { return claims }, body: `{"user_id":1,"request_id":"` + strings.Repeat("x", 5000) + `"}`, wantStatus: 413, wantCode: "body_too_large", wantRows: 4},
		{name: "not JSON", method: "POST", path: func() string { return claims }, ct: "text/plain", body: `user=1`, wantStatus: 415, wantCode: "unsupported_media_type", wantRows: 4},
		{name: "bad template id", method: "POST", path: func() string { return "/v1/templates/-3/claims" }, body: `{"user_id":1,"request_id":"x"}`, wantStatus: 400, wantCode: "invalid_argument", wantRows: 4},
		{name: "negative stock add", method: "POST", path: func() string { return fmt.Sprintf("/v1/templates/%d/stock", hot) }, body: `{"add":-5}`, wantStatus: 400, wantCode: "invalid_argument", wantRows: 4},
		{name: "stock add to no template", method: "POST", path: func() string { return "/v1/templates/999999/stock" }, body: `{"add":5}`, wantStatus: 404, wantCode: "template_not_found", wantRows: 4},

		{name: "lock", method: "POST", path: func() string { return fmt.Sprintf("/v1/coupons/%d/lock", first) }, body: `{"user_id":7,"order_id":"o1"}`, wantStatus: 200, wantRows: 4,
			check: func(t *testing.T, r response) {
				if c := r.body["coupon"].(map[string]any); c["status"] != "locked" || c["order_id"] != "o1" {
					t.Errorf("coupon %s", r.raw)
				}
			}},
		{name: "lock again, same order", method: "POST", path: func() string { return fmt.Sprintf("/v1/coupons/%d/lock", first) }, body: `{"user_id":7,"order_id":"o1"}`, wantStatus: 200, wantRows: 4},
		{name: "lock for another order", method: "POST", path: func() string { return fmt.Sprintf("/v1/coupons/%d/lock", first) }, body: `{"user_id":7,"order_id":"o2"}`, wantStatus: 409, wantCode: "locked", wantRows: 4},
		{name: "redeem by another order", method: "POST", path: func() string { return fmt.Sprintf("/v1/coupons/%d/redeem", first) }, body: `{"user_id":7,"order_id":"o2"}`, wantStatus: 409, wantCode: "locked", wantRows: 4},
		{name: "unlock", method: "POST", path: func() string { return fmt.Sprintf("/v1/coupons/%d/unlock", first) }, body: `{"user_id":7,"order_id":"o1"}`, wantStatus: 200, wantRows: 4,
			check: func(t *testing.T, r response) {
				if c := r.body["coupon"].(map[string]any); c["status"] != "unused" {
					t.Errorf("coupon %s", r.raw)
				}
			}},
		{name: "redeem by someone else", method: "POST", path: func() string { return fmt.Sprintf("/v1/coupons/%d/redeem", first) }, body: `{"user_id":8,"order_id":"o2"}`, wantStatus: 404, wantCode: "coupon_not_found", wantRows: 4},
		{name: "redeem", method: "POST", path: func() string { return fmt.Sprintf("/v1/coupons/%d/redeem", first) }, body: `{"user_id":7,"order_id":"o2"}`, wantStatus: 200, wantRows: 4,
			check: func(t *testing.T, r response) {
				if c := r.body["coupon"].(map[string]any); c["status"] != "used" || c["used_at"] == nil {
					t.Errorf("coupon %s", r.raw)
				}
			}},
		{name: "double redeem", method: "POST", path: func() string { return fmt.Sprintf("/v1/coupons/%d/redeem", first) }, body: `{"user_id":7,"order_id":"o2"}`, wantStatus: 409, wantCode: "already_used", wantRows: 4},
		{name: "redeem no coupon", method: "POST", path: func() string { return "/v1/coupons/999999/redeem" }, body: `{"user_id":7,"order_id":"o2"}`, wantStatus: 404, wantCode: "coupon_not_found", wantRows: 4},
		{name: "redeem without order", method: "POST", path: func() string { return fmt.Sprintf("/v1/coupons/%d/redeem", second) }, body: `{"user_id":7}`, wantStatus: 400, wantCode: "invalid_argument", wantRows: 4},
		{name: "redeem with malformed JSON", method: "POST", path: func() string { return fmt.Sprintf("/v1/coupons/%d/redeem", second) }, body: `[`, wantStatus: 400, wantCode: "invalid_json", wantRows: 4},
		{name: "list used", method: "GET", path: func() string { return "/v1/users/7/coupons?status=used" }, wantStatus: 200, wantRows: 4,
			check: func(t *testing.T, r response) {
				if cs := r.body["coupons"].([]any); len(cs) != 1 || int64(cs[0].(map[string]any)["id"].(float64)) != first {
					t.Errorf("list %s", r.raw)
				}
			}},
		{name: "list all", method: "GET", path: func() string { return "/v1/users/7/coupons" }, wantStatus: 200, wantRows: 4,
			check: func(t *testing.T, r response) {
				if cs := r.body["coupons"].([]any); len(cs) != 2 {
					t.Errorf("list %s", r.raw)
				}
			}},
		{name: "list nobody's", method: "GET", path: func() string { return "/v1/users/12345/coupons?status=unused" }, wantStatus: 200, wantRows: 4,
			check: func(t *testing.T, r response) {
				if string(r.raw) != "{\"coupons\":[]}\n" {
					t.Errorf("list %s", r.raw)
				}
			}},
		{name: "list with a bad status", method: "GET", path: func() string { return "/v1/users/7/coupons?status=gone" }, wantStatus: 400, wantCode: "invalid_argument", wantRows: 4},
	}
	for _, s := range steps {
		ok := t.Run(s.name, func(t *testing.T) {
			ct := s.ct
			if ct == "" && s.body != "" {
				ct = jsonCT
			}
			r := f.do(t, s.method, s.path(), ct, s.body)
			if r.status != s.wantStatus || r.code() != s.wantCode {
				t.Fatalf("%s %s: %d %s, want %d %q", s.method, s.path(), r.status, r.raw, s.wantStatus, s.wantCode)
			}
			if n := coupons(); n != s.wantRows {
				t.Fatalf("coupons rows = %d, want %d", n, s.wantRows)
			}
			if s.check != nil {
				s.check(t, r)
			}
		})
		if !ok {
			return // later steps depend on this one
		}
	}
}
