package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"couponpush/abuse"
	"couponpush/coupon"
	"couponpush/internal/enginetest"
	"couponpush/template"
)

// abuseFixture is two API instances (a and b) over one MySQL database and
// one Redis, each with its own guard and Redis client, as two workers
// are; a trusts 127.0.0.1 as a proxy, b trusts none. tpl is a live
// template with stock to spare.
type abuseFixture struct {
	*fixture
	a, b *httptest.Server
	tpl  int64
}

func newAbuseFixture(t *testing.T, edit func(*abuse.Config)) *abuseFixture {
	t.Helper()
	prefix := enginetest.Prefix(t)
	guard := func() Guard {
		c := abuse.Config{Prefix: prefix, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		edit(&c)
		g, err := abuse.New(enginetest.Redis(t), c)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	var second Config
	f := newFixtureOf(t, func(f *fixture, c *Config) {
		cache, err := template.NewCache(f.store, template.CacheConfig{})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := coupon.NewService(coupon.Config{DB: f.db, Redis: enginetest.Redis(t), Prefix: prefix,
			Templates: cache, Stock: f.store, Invalidate: cache.Invalidate})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Stop)
		c.Templates, c.Coupons = cache, svc
		second = *c
		c.Guard = guard()
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	second.Guard = guard()
	hb, err := New(second)
	if err != nil {
		t.Fatal(err)
	}
	b := httptest.NewServer(hb)
	t.Cleanup(b.Close)
	af := &abuseFixture{fixture: f, a: f.srv, b: b}
	start := time.Now().UTC().Add(-time.Hour)
	r := f.do(t, "POST", "/v1/templates", jsonCT, fmt.Sprintf(`{"name":"drop","type":"fixed","value":100,"stock":1000,
"per_user_limit":100,"grab_start":%q,"grab_end":%q,"valid_days":1}`, start.Format(time.RFC3339), start.Add(3*time.Hour).Format(time.RFC3339)))
	if r.status != 201 {
		t.Fatalf("create template: %d %s", r.status, r.raw)
	}
	af.tpl = int64(r.body["id"].(float64))
	return af
}

// call sends a request to srv with extra headers.
func call(t *testing.T, srv *httptest.Server, method, path, body string, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", jsonCT)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: answer %q is not JSON", method, path, raw)
		}
	}
	return r
}

// checkLimited checks a 429 answer: rate_limited with a whole number of
// seconds of at least 1 in Retry-After.
func checkLimited(t *testing.T, r response) {
	t.Helper()
	n, err := strconv.Atoi(r.header.Get("Retry-After"))
	if r.status != 429 || r.code() != "rate_limited" || err != nil || n < 1 {
		t.Errorf("refusal %d %s, Retry-After %q: want 429 rate_limited with whole seconds >= 1", r.status, r.raw, r.header.Get("Retry-After"))
	}
}

// TestLimitsAcrossInstances floods two API instances sharing one Redis:
// from one user (claims) and from one IP (subscriptions). The limit holds
// across both, refused requests are 429 with Retry-After, and nothing of
// theirs is written.
func TestLimitsAcrossInstances(t *testing.T) {
	t.Parallel()
	f := newAbuseFixture(t, func(c *abuse.Config) {
		c.Limits = map[abuse.Rule]abuse.Limit{
			{Action: abuse.Claim, Kind: abuse.User}:     {Rate: 1, Burst: 3},
			{Action: abuse.Claim, Kind: abuse.IP}:       {Rate: 1000, Burst: 1000},
			{Action: abuse.Subscribe, Kind: abuse.User}: {Rate: 1000, Burst: 1000},
			{Action: abuse.Subscribe, Kind: abuse.IP}:   {Rate: 1, Burst: 5},
		}
	})
	const n = 20
	t.Run("one user claims", func(t *testing.T) {
		claims := fmt.Sprintf("/v1/templates/%d/claims", f.tpl)
		t0 := time.Now()
		served := 0
		for i := range n {
			srv := []*httptest.Server{f.a, f.b}[i%2]
			r := call(t, srv, "POST", claims, fmt.Sprintf(`{"user_id":7,"request_id":"r%d"}`, i))
			switch r.status {
			case 201:
				served++
			default:
				checkLimited(t, r)
			}
		}
		// The burst, and one more for each second the flood took.
		if most := 3 + int(time.Since(t0)/time.Second) + 1; served < 3 || served > most {
			t.Errorf("served %d of %d claims, want 3 to %d", served, n, most)
		}
		if rows := f.count(t, "coupons"); rows != served {
			t.Errorf("%d coupons in MySQL for %d claims served", rows, served)
		}
		r := call(t, f.a, "GET", fmt.Sprintf("/v1/templates/%d", f.tpl), "")
		if left := int(r.body["remaining"].(float64)); left != 1000-served {
			t.Errorf("Redis stock %d left, want %d", left, 1000-served)
		}
	})
	t.Run("one IP subscribes", func(t *testing.T) {
		path := func(u int) string { return fmt.Sprintf("/v1/subscriptions/%d/%d", 100+u, f.tpl) }
		t0 := time.Now()
		served := 0
		for u := range n {
			srv := []*httptest.Server{f.a, f.b}[u%2]
			r := call(t, srv, "PUT", path(u), "")
			switch r.status {
			case 201:
				served++
			default:
				checkLimited(t, r)
			}
		}
		if most := 5 + int(time.Since(t0)/time.Second) + 1; served < 5 || served > most {
			t.Errorf("served %d of %d subscriptions, want 5 to %d", served, n, most)
		}
		if rows := f.count(t, "subscriptions"); rows != served {
			t.Errorf("%d subscriptions in MySQL for %d served", rows, served)
		}
		f.idx.mu.Lock()
		indexed := len(f.idx.entries)
		f.idx.mu.Unlock()
		if indexed != served {
			t.Errorf("%d reminders indexed for %d served", indexed, served)
		}
		// Reads stay open.
		if r := call(t, f.b, "GET", "/v1/subscriptions/100", ""); r.status != 200 {
			t.Errorf("read while limited: %d %s", r.status, r.raw)
		}
	})
}

// TestForwardedFor: X-Forwarded-For names the client only when the peer
// is a trusted proxy (instance a trusts 127.0.0.1, b does not).
func TestForwardedFor(t *testing.T) {
	t.Parallel()
	f := newAbuseFixture(t, func(c *abuse.Config) {
		c.Limits = map[abuse.Rule]abuse.Limit{{Action: abuse.Subscribe, Kind: abuse.IP}: {Rate: 1, Burst: 2}}
	})
	put := func(srv *httptest.Server, user int, xff string) response {
		return call(t, srv, "PUT", fmt.Sprintf("/v1/subscriptions/%d/%d", user, f.tpl), "", "X-Forwarded-For", xff)
	}
	// Through the trusted proxy each forwarded client has its own limit;
	// a forged left-most address does not help (the proxy appended the
	// real one).
	for i := range 2 {
		if r := put(f.a, 10+i, "198.51.100.1"); r.status != 201 {
			t.Fatalf("client 1, request %d: %d %s", i, r.status, r.raw)
		}
	}
	checkLimited(t, put(f.a, 12, "203.0.113.50, 198.51.100.1"))
	if r := put(f.a, 13, "198.51.100.2"); r.status != 201 {
		t.Errorf("client 2 shares client 1's limit: %d %s", r.status, r.raw)
	}
	// Without trust the header is ignored: every request is 127.0.0.1's.
	for i := range 2 {
		if r := put(f.b, 20+i, fmt.Sprintf("198.51.100.%d", 10+i)); r.status != 201 {
			t.Fatalf("untrusted, request %d: %d %s", i, r.status, r.raw)
		}
	}
	checkLimited(t, put(f.b, 22, "198.51.100.12"))
	// A block of a forwarded address applies through the proxy only.
	if r := call(t, f.a, "PUT", "/v1/admin/blocks/ips/198.51.100.3", `{"for_seconds":3600,"reason":"scraper"}`); r.status != 200 {
		t.Fatalf("block: %d %s", r.status, r.raw)
	}
	if r := put(f.a, 30, "198.51.100.3"); r.status != 403 || r.code() != "blocked" {
		t.Errorf("blocked client through the proxy: %d %s", r.status, r.raw)
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer", "192.0.2.1:5000", []string{"198.51.100.1"}, "192.0.2.1"},
		{"no header", "10.0.0.1:5000", nil, "10.0.0.1"},
		{"one hop", "10.0.0.1:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"forged left", "10.0.0.1:5000", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"two proxies", "10.0.0.1:5000", []string{"198.51.100.1, 10.0.0.2"}, "198.51.100.1"},
		{"two headers", "10.0.0.1:5000", []string{"198.51.100.1", "10.0.0.2"}, "198.51.100.1"},
		{"all trusted", "10.0.0.1:5000", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"garbage", "10.0.0.1:5000", []string{"198.51.100.1, bogus, 10.0.0.2"}, "10.0.0.2"},
		{"with port", "10.0.0.1:5000", []string{"198.51.100.1:443"}, "198.51.100.1"},
		{"v6 peer", "[::1]:5000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"mapped", "[::ffff:192.0.2.9]:5000", nil, "192.0.2.9"},
		{"bad peer", "pipe", nil, "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			for _, h := range tc.xff {
				r.Header.Add("X-Forwarded-For", h)
			}
			if got := clientIP(r, trusted).String(); got != tc.want {
				t.Errorf("clientIP = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestBlocksAPI: operators block, list and release; a blocked caller gets
// 403 blocked on writes (nothing written) while reads stay open; a block
// expires by itself.
func TestBlocksAPI(t *testing.T) {
	t.Parallel()
	f := newAbuseFixture(t, func(*abuse.Config) {})
	claims := fmt.Sprintf("/v1/templates/%d/claims", f.tpl)
	if r := call(t, f.a, "PUT", "/v1/admin/blocks/users/7", `{"for_seconds":1,"reason":"bot"}`); r.status != 200 ||
		r.body["kind"] != "user" || r.body["subject"] != "7" || r.body["who"] != "operator" || !msTime.MatchString(r.body["until"].(string)) {
		t.Fatalf("block user: %d %s", r.status, r.raw)
	}
	if r := call(t, f.b, "PUT", "/v1/admin/blocks/ips/2001:DB8::1", `{"for_seconds":3600,"reason":"scraper"}`); r.status != 200 || r.body["subject"] != "2001:db8::1" {
		t.Fatalf("block ip: %d %s", r.status, r.raw)
	}
	for _, r := range []response{
		call(t, f.b, "POST", claims, `{"user_id":7,"request_id":"x"}`),
		call(t, f.a, "PUT", fmt.Sprintf("/v1/subscriptions/7/%d", f.tpl), ""),
		call(t, f.b, "DELETE", fmt.Sprintf("/v1/subscriptions/7/%d", f.tpl), ""),
	} {
		if r.status != 403 || r.code() != "blocked" {
			t.Errorf("blocked user's write: %d %s", r.status, r.raw)
		}
	}
	if f.count(t, "coupons") != 0 || f.count(t, "subscriptions") != 0 {
		t.Error("a blocked write was written")
	}
	for _, p := range []string{"/v1/subscriptions/7", "/v1/users/7/coupons", fmt.Sprintf("/v1/templates/%d", f.tpl)} {
		if r := call(t, f.a, "GET", p, ""); r.status != 200 {
			t.Errorf("read %s while blocked: %d %s", p, r.status, r.raw)
		}
	}
	r := call(t, f.b, "GET", "/v1/admin/blocks", "")
	bs, _ := r.body["blocks"].([]any)
	if r.status != 200 || len(bs) != 2 || bs[0].(map[string]any)["subject"] != "7" || bs[1].(map[string]any)["reason"] != "scraper" {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	enginetest.Eventually(t, "the 1s block to expire", 20*time.Second, func() bool {
		return call(t, f.a, "POST", claims, `{"user_id":7,"request_id":"x"}`).status == 201
	})
	if r := call(t, f.a, "DELETE", "/v1/admin/blocks/users/7", ""); r.status != 404 || r.code() != "block_not_found" {
		t.Errorf("release an expired block: %d %s", r.status, r.raw)
	}
	if r := call(t, f.a, "DELETE", "/v1/admin/blocks/ips/2001:db8::1", ""); r.status != 204 {
		t.Errorf("release: %d %s", r.status, r.raw)
	}
	if r := call(t, f.a, "GET", "/v1/admin/blocks", ""); r.status != 200 || len(r.body["blocks"].([]any)) != 0 {
		t.Errorf("list after release and expiry: %d %s", r.status, r.raw)
	}
	for _, tc := range []struct{ name, method, path, body, code string }{
		{"zero seconds", "PUT", "/v1/admin/blocks/users/7", `{"for_seconds":0,"reason":"x"}`, "invalid_argument"},
		{"too long", "PUT", "/v1/admin/blocks/users/7", `{"for_seconds":2592001,"reason":"x"}`, "invalid_argument"},
		{"no reason", "PUT", "/v1/admin/blocks/users/7", `{"for_seconds":60}`, "invalid_argument"},
		{"long reason", "PUT", "/v1/admin/blocks/users/7", `{"for_seconds":60,"reason":"` + strings.Repeat("x", 201) + `"}`, "invalid_argument"},
		{"unknown field", "PUT", "/v1/admin/blocks/users/7", `{"for_seconds":60,"reason":"x","who":"auto"}`, "invalid_json"},
		{"no body", "PUT", "/v1/admin/blocks/users/7", ``, "invalid_json"},
		{"bad user", "PUT", "/v1/admin/blocks/users/0", `{"for_seconds":60,"reason":"x"}`, "invalid_argument"},
		{"bad ip", "PUT", "/v1/admin/blocks/ips/1.2.3", `{"for_seconds":60,"reason":"x"}`, "invalid_argument"},
		{"zone", "DELETE", "/v1/admin/blocks/ips/fe80::1%25eth0", ``, "invalid_argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := call(t, f.a, tc.method, tc.path, tc.body); r.status != 400 || r.code() != tc.code {
				t.Errorf("%d %s, want 400 %s", r.status, r.raw, tc.code)
			}
		})
	}
}

// TestAutoBlockAPI: a user who keeps tripping the claim limit is blocked
// by itself, listed as "auto", and let back in when the block ends.
func TestAutoBlockAPI(t *testing.T) {
	t.Parallel()
	f := newAbuseFixture(t, func(c *abuse.Config) {
		c.Limits = map[abuse.Rule]abuse.Limit{{Action: abuse.Claim, Kind: abuse.User}: {Rate: 1, Burst: 1}}
		c.AutoBlock = abuse.AutoBlock{Trips: 2, Window: time.Minute, For: 2 * time.Second}
	})
	claims := fmt.Sprintf("/v1/templates/%d/claims", f.tpl)
	blockedAt := -1
	for i := range 30 {
		r := call(t, []*httptest.Server{f.a, f.b}[i%2], "POST", claims, fmt.Sprintf(`{"user_id":9,"request_id":"r%d"}`, i))
		if r.status == 403 && r.code() == "blocked" {
			blockedAt = i
			break
		}
		if r.status != 201 && r.status != 429 {
			t.Fatalf("claim %d: %d %s", i, r.status, r.raw)
		}
	}
	if blockedAt < 0 {
		t.Fatal("30 claims at once did not get the user blocked")
	}
	r := call(t, f.a, "GET", "/v1/admin/blocks", "")
	bs, _ := r.body["blocks"].([]any)
	if len(bs) != 1 {
		t.Fatalf("list: %s", r.raw)
	}
	if b := bs[0].(map[string]any); b["who"] != "auto" || b["subject"] != "9" || b["reason"] != "auto: rate limit tripped 2 times in 1m0s" {
		t.Errorf("block %v", b)
	}
	enginetest.Eventually(t, "the automatic block to end", 20*time.Second, func() bool {
		return call(t, f.b, "POST", claims, `{"user_id":9,"request_id":"after"}`).code() != "blocked"
	})
}
