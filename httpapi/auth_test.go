package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"couponpush/auth"
	"couponpush/coupon"
	"couponpush/template"
)

var (
	testSecret   = []byte("httpapi-test-secret-of-32-bytes!")
	testOperator = "httpapi-test-operator-token"
)

// userToken is an HS256 token for user, signed with secret, expiring at exp.
func userToken(t *testing.T, secret []byte, user string, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": user, "exp": exp.Unix()}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestEveryRouteHasACallerKind pins the caller kind of every route to the
// table of CONTRACT.md "Who may call what".
func TestEveryRouteHasACallerKind(t *testing.T) {
	t.Parallel()
	want := map[string]caller{
		"POST /v1/templates":                               operators,
		"GET /v1/templates/{template_id}":                  users,
		"PATCH /v1/templates/{template_id}":                operators,
		"POST /v1/templates/{template_id}/stock":           operators,
		"PUT /v1/subscriptions/{user_id}/{template_id}":    users,
		"DELETE /v1/subscriptions/{user_id}/{template_id}": users,
		"GET /v1/subscriptions/{user_id}":                  users,
		"POST /v1/templates/{template_id}/claims":          users,
		"POST /v1/coupons/{coupon_id}/lock":                users,
		"POST /v1/coupons/{coupon_id}/unlock":              users,
		"POST /v1/coupons/{coupon_id}/redeem":              users,
		"GET /v1/users/{user_id}/coupons":                  users,
		"GET /healthz":                                     anyone,
		"GET /readyz":                                      anyone,
		"GET /metrics":                                     anyone,
	}
	var svc *coupon.Service // non-nil Coupons, so the coupon routes are listed
	a := &api{cfg: Config{Coupons: svc}}
	for _, rt := range a.routes() {
		if err := checkRoute(rt); err != nil {
			t.Errorf("%v", err)
		}
		if _, path, _ := strings.Cut(rt.pattern, " "); strings.HasPrefix(path, adminPrefix) {
			continue // every admin route is for operators; checkRoute saw to it
		}
		if k, ok := want[rt.pattern]; !ok {
			t.Errorf("route %q is not in this test's table: add it with its caller kind", rt.pattern)
		} else if k != rt.caller {
			t.Errorf("route %q is for %v, want %v", rt.pattern, rt.caller, k)
		}
	}

	for _, rt := range []route{
		{pattern: "GET /v1/x"},
		{pattern: "PUT /v1/admin/blocks/users/{user_id}", caller: users},
		{pattern: "GET /v1/admin/blocks", caller: anyone},
	} {
		if checkRoute(rt) == nil {
			t.Errorf("checkRoute(%q, %v) = nil, want an error", rt.pattern, rt.caller)
		}
	}
	if checkRoute(route{pattern: "GET /v1/admin/blocks", caller: operators}) != nil {
		t.Error("checkRoute refuses an operators' admin route")
	}
}

// state is what a refused request must leave alone: MySQL rows and the
// Redis stock.
type state struct {
	templates, subscriptions, coupons string
	remaining                         int64
	indexed                           int
}

func (f *couponFixture) state(t *testing.T) state {
	t.Helper()
	var s state
	for _, q := range []struct {
		dst *string
		sql string
	}{
		{&s.templates, "SELECT COALESCE(GROUP_CONCAT(id, ':', name, ':', stock, ':', version ORDER BY id), '') FROM templates"},
		{&s.subscriptions, "SELECT COALESCE(GROUP_CONCAT(user_id, ':', template_id, ':', status ORDER BY user_id, template_id), '') FROM subscriptions"},
		{&s.coupons, "SELECT COALESCE(GROUP_CONCAT(id, ':', user_id, ':', status, ':', COALESCE(order_id, '') ORDER BY id), '') FROM coupons"},
	} {
		if err := f.db.QueryRow(q.sql).Scan(q.dst); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []int64{f.hot, f.later} {
		tpl, err := f.svc.Template(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		s.remaining += tpl.Remaining
	}
	f.idx.mu.Lock()
	s.indexed = len(f.idx.entries)
	f.idx.mu.Unlock()
	return s
}

// TestWhoMayCallWhat runs every route of the contract's caller table with
// each kind of caller and of bad token, on the real engines: the right
// callers get through, the others get 401 or 403 and write nothing.
func TestWhoMayCallWhat(t *testing.T) {
	t.Parallel()
	a, err := auth.New(auth.Config{OperatorTokens: []string{testOperator}, HS256Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	f := newCouponFixtureOf(t, func(c *Config) {
		c.AuthOff, c.Auth = false, a
		c.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("m 1\n")) })
	}, testOperator)
	hour := time.Now().Add(time.Hour)
	tok := func(user int64) string { return userToken(t, testSecret, fmt.Sprint(user), hour) }
	bad := map[string]string{
		"no token":    "",
		"expired":     userToken(t, testSecret, "7", time.Now().Add(-time.Hour)),
		"wrong key":   userToken(t, []byte("another-secret-another-secret-32"), "7", hour),
		"alg none":    mustNone(t, jwt.MapClaims{"sub": "7", "exp": hour.Unix()}),
		"not a token": "httpapi-test-operator-tokex",
	}
	// A coupon each for user 7 and user 9, to lock, unlock and redeem.
	claim := func(user int64, rid string) int64 {
		r := f.doAs(t, testOperator, "POST", fmt.Sprintf("/v1/templates/%d/claims", f.hot), jsonCT, fmt.Sprintf(`{"user_id":%d,"request_id":%q}`, user, rid))
		if r.status != 201 {
			t.Fatalf("claim for %d: %d %s", user, r.status, r.raw)
		}
		return int64(r.body["coupon"].(map[string]any)["id"].(float64))
	}
	coupons := map[int64]int64{7: claim(7, "setup-7"), 9: claim(9, "setup-9")}
	tpl := f.tpl.ID

	type req struct{ method, path, body string }
	rows := []struct {
		name string
		kind caller
		req  func(user int64) req // the request acting for user
	}{
		{"create template", operators, func(int64) req {
			return req{"POST", "/v1/templates", `{"name":"op","type":"fixed","value":1,"stock":5,"grab_start":"2030-01-01T00:00:00Z","grab_end":"2030-01-02T00:00:00Z","valid_days":1}`}
		}},
		{"patch template", operators, func(int64) req { return req{"PATCH", fmt.Sprintf("/v1/templates/%d", f.later), `{"name":"renamed"}`} }},
		// Before the claims: their stock is low.
		{"add stock", operators, func(int64) req { return req{"POST", fmt.Sprintf("/v1/templates/%d/stock", f.hot), `{"add":5}`} }},
		{"get template", users, func(int64) req { return req{"GET", fmt.Sprintf("/v1/templates/%d", f.hot), ""} }},
		{"subscribe", users, func(u int64) req { return req{"PUT", fmt.Sprintf("/v1/subscriptions/%d/%d", u, tpl), ""} }},
		{"list subscriptions", users, func(u int64) req { return req{"GET", fmt.Sprintf("/v1/subscriptions/%d", u), ""} }},
		{"cancel", users, func(u int64) req { return req{"DELETE", fmt.Sprintf("/v1/subscriptions/%d/%d", u, tpl), ""} }},
		{"claim", users, func(u int64) req {
			return req{"POST", fmt.Sprintf("/v1/templates/%d/claims", f.hot), fmt.Sprintf(`{"user_id":%d,"request_id":"r-%d"}`, u, u)}
		}},
		{"list coupons", users, func(u int64) req { return req{"GET", fmt.Sprintf("/v1/users/%d/coupons", u), ""} }},
		{"lock", users, func(u int64) req {
			return req{"POST", fmt.Sprintf("/v1/coupons/%d/lock", coupons[u]), fmt.Sprintf(`{"user_id":%d,"order_id":"o"}`, u)}
		}},
		{"unlock", users, func(u int64) req {
			return req{"POST", fmt.Sprintf("/v1/coupons/%d/unlock", coupons[u]), fmt.Sprintf(`{"user_id":%d,"order_id":"o"}`, u)}
		}},
		{"redeem", users, func(u int64) req {
			return req{"POST", fmt.Sprintf("/v1/coupons/%d/redeem", coupons[u]), fmt.Sprintf(`{"user_id":%d,"order_id":"o"}`, u)}
		}},
		{"healthz", anyone, func(int64) req { return req{"GET", "/healthz", ""} }},
		{"readyz", anyone, func(int64) req { return req{"GET", "/readyz", ""} }},
		{"metrics", anyone, func(int64) req { return req{"GET", "/metrics", ""} }},
	}

	send := func(t *testing.T, token string, rq req) response {
		t.Helper()
		ct := ""
		if rq.body != "" {
			ct = jsonCT
		}
		return f.doAs(t, token, rq.method, rq.path, ct, rq.body)
	}
	refused := func(t *testing.T, token string, rq req, status int, code, challenge string) {
		t.Helper()
		before := f.state(t)
		r := send(t, token, rq)
		if r.status != status || r.code() != code {
			t.Fatalf("%s %s = %d %s, want %d %s", rq.method, rq.path, r.status, r.raw, status, code)
		}
		if got := r.header.Get("WWW-Authenticate"); got != challenge {
			t.Errorf("WWW-Authenticate = %q, want %q", got, challenge)
		}
		if after := f.state(t); after != before {
			t.Errorf("a refused request wrote:\nbefore %+v\nafter  %+v", before, after)
		}
	}
	ok := func(t *testing.T, token string, rq req) {
		t.Helper()
		if r := send(t, token, rq); r.status < 200 || r.status > 299 {
			t.Fatalf("%s %s = %d %s, want 2xx", rq.method, rq.path, r.status, r.raw)
		}
	}

	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			if row.kind == anyone {
				ok(t, "", row.req(7))
				ok(t, "garbage", row.req(7)) // a probe does not look at tokens
				return
			}
			names := slices.Sorted(func(yield func(string) bool) {
				for n := range bad {
					if !yield(n) {
						return
					}
				}
			})
			for _, name := range names {
				t.Run(name, func(t *testing.T) {
					challenge := `Bearer error="invalid_token"`
					if bad[name] == "" {
						challenge = "Bearer"
					}
					refused(t, bad[name], row.req(7), http.StatusUnauthorized, "unauthorized", challenge)
				})
			}
			switch row.kind {
			case operators:
				t.Run("user token", func(t *testing.T) { refused(t, tok(7), row.req(7), http.StatusForbidden, "forbidden", "") })
				t.Run("operator", func(t *testing.T) { ok(t, testOperator, row.req(7)) })
			case users:
				if row.name != "get template" {
					t.Run("another user's token", func(t *testing.T) { refused(t, tok(8), row.req(7), http.StatusForbidden, "forbidden", "") })
				}
				t.Run("own token", func(t *testing.T) { ok(t, tok(7), row.req(7)) })
				t.Run("operator on behalf of a user", func(t *testing.T) { ok(t, testOperator, row.req(9)) })
			}
		})
	}
}

func mustNone(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAuthOff: with AuthOff every route is open, and New needs one of Auth
// and AuthOff.
func TestAuthOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil) // AuthOff
	if r := f.do(t, "PUT", fmt.Sprintf("/v1/subscriptions/5/%d", f.tpl.ID), "", ""); r.status != 201 {
		t.Fatalf("subscribe without a token, auth off: %d %s", r.status, r.raw)
	}
	cache, err := template.NewCache(f.store, template.CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	base := Config{Templates: cache, Subscriptions: f.subs}
	a, err := auth.New(auth.Config{OperatorTokens: []string{testOperator}})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]Config{"neither": base, "both": {Templates: base.Templates, Subscriptions: f.subs, Auth: a, AuthOff: true}} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "Auth") {
			t.Errorf("%s: Validate = %v, want an error about Auth", name, err)
		}
	}
}
