package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"couponpush/client"
	"couponpush/config"
	"couponpush/httpapi"
	"couponpush/internal/devtoken"
	"couponpush/internal/enginetest"
	"couponpush/worker"
)

// conformance is a RoundTripper that checks every answer against
// docs/openapi.yaml (and that a request the document refuses is answered
// 400) and records the routes it saw.
type conformance struct {
	t      *testing.T
	router routers.Router
	next   http.RoundTripper

	mu   sync.Mutex
	seen map[string]bool // "METHOD /path/{param}"
}

func (c *conformance) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Errorf("%s %s is not in the OpenAPI document: %v", req.Method, req.URL.Path, err)
		return c.next.RoundTrip(req)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	// A request the document refuses must be refused by the server too.
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	if req.GetBody != nil { // ValidateRequest read the body
		if req.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if reqErr != nil && resp.StatusCode != http.StatusBadRequest {
		c.t.Errorf("%s %s: the request does not match the document (%v) but was answered %d", req.Method, req.URL.Path, reqErr, resp.StatusCode)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	out.SetBodyBytes(b)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		c.t.Errorf("%s %s: the %d answer does not match the document: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, err, b)
	}
	c.mu.Lock()
	c.seen[req.Method+" "+route.Path] = true
	c.mu.Unlock()
	return resp, nil
}

// TestClientAgainstWorker runs every method of the client against a real
// worker (API and coupon roles, auth and rate limits on) on the real
// engines, through a transport that validates each request and answer
// against docs/openapi.yaml; at the end every route of the server's table
// must have been called.
func TestClientAgainstWorker(t *testing.T) {
	ctx := context.Background()
	prefix := enginetest.Prefix(t)
	tokens, err := devtoken.New()
	if err != nil {
		t.Fatal(err)
	}
	addr := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()
	nsqd, _ := enginetest.NSQD(t)
	wc := config.Worker{
		Roles: []string{config.RoleAPI, config.RoleCoupon}, HTTPAddr: addr,
		RedisAddrs: []string{enginetest.RedisAddr(t)}, RedisPrefix: prefix,
		MySQLDSN: enginetest.MySQL(t), ConsulAddr: enginetest.Consul(t), ConsulPrefix: prefix,
		ServiceName: strings.ToLower(strings.ReplaceAll(prefix, "_", "-")), WorkerID: prefix + "-w1",
		NSQDAddr: nsqd, Topic: prefix,
		OperatorToken: config.Secret(tokens.Operator), JWTHS256Secret: config.Secret(tokens.Secret),
		// One subscription write per second per user, so a 429 is easy
		// to provoke; the other limits keep their defaults.
		LimitSubscribeUserRate: 1, LimitSubscribeUserBurst: 1,
	}.WithDefaults()
	if err := wc.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := worker.Start(ctx, wc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Stop(); err != nil {
			t.Error(err)
		}
	})
	base := "http://" + addr

	doc := loadOpenAPI(t)
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	check := &conformance{t: t, router: router, next: http.DefaultTransport, seen: map[string]bool{}}
	hc := &http.Client{Transport: check, Timeout: 30 * time.Second}
	op, err := client.New(client.Config{BaseURL: base, Token: tokens.Operator, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	anon, err := client.New(client.Config{BaseURL: base, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	as := func(u int64) client.CallOption {
		tok, err := tokens.User(u)
		if err != nil {
			t.Fatal(err)
		}
		return client.WithToken(tok)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	want := func(err, sentinel error) {
		t.Helper()
		if !errors.Is(err, sentinel) {
			t.Fatalf("err %v, want %v", err, sentinel)
		}
	}

	{ // probes
		must(anon.Healthz(ctx))
		r, err := anon.Ready(ctx)
		must(err)
		if r.Status != "ready" || r.Checks["mysql"] != "ok" {
			t.Fatalf("readyz %+v", r)
		}
		m, err := anon.Metrics(ctx)
		must(err)
		if !bytes.Contains(m, []byte("couponpush_")) {
			t.Fatalf("no couponpush metrics in %d bytes", len(m))
		}
	}

	now := time.Now().UTC()
	hot := client.TemplateDraft{Name: "hot", Type: client.TypeFixed, Value: 500, Stock: 2, SubStocks: 2,
		GrabStart: now.Add(-time.Minute), GrabEnd: now.Add(time.Hour), ValidDays: 7}
	var tpl client.Template
	{ // templates
		_, err := anon.CreateTemplate(ctx, hot)
		want(err, client.ErrUnauthorized)
		_, err = op.CreateTemplate(ctx, hot, as(1))
		want(err, client.ErrForbidden)
		bad := hot
		bad.Stock = 0
		_, err = op.CreateTemplate(ctx, bad)
		var e *client.Error
		if !errors.As(err, &e) || e.Code != "invalid_argument" || len(e.Fields) != 1 || e.Fields[0].Field != "stock" {
			t.Fatalf("err %v, want invalid_argument naming stock", err)
		}
		tpl, err = op.CreateTemplate(ctx, hot)
		must(err)
		if tpl.ID == 0 || tpl.Stock != 2 || tpl.Remaining != 2 || tpl.SubStocks != 2 || tpl.ValidDays != 7 || !tpl.GrabStart.Equal(hot.GrabStart.Truncate(time.Millisecond)) ||
			tpl.Priority != client.PriorityNormal {
			t.Fatalf("created %+v", tpl)
		}
		high := hot
		high.Name, high.Priority = "hot, high", client.PriorityHigh
		hp, err := op.CreateTemplate(ctx, high)
		must(err)
		if got, err := op.Template(ctx, hp.ID); err != nil || hp.Priority != client.PriorityHigh || got.Priority != client.PriorityHigh {
			t.Fatalf("created %q, read %q (%v), want high", hp.Priority, got.Priority, err)
		}
		badPriority := hot
		badPriority.Priority = "urgent"
		_, err = op.CreateTemplate(ctx, badPriority)
		if !errors.As(err, &e) || e.Code != "invalid_argument" || len(e.Fields) != 1 || e.Fields[0].Field != "priority" {
			t.Fatalf("err %v, want invalid_argument naming priority", err)
		}
		got, err := op.Template(ctx, tpl.ID, as(99))
		must(err)
		if got.ID != tpl.ID || got.Name != "hot" {
			t.Fatalf("read %+v", got)
		}
		_, err = op.Template(ctx, tpl.ID+1_000_000)
		want(err, client.ErrTemplateNotFound)
		name := "hot, renamed"
		got, err = op.UpdateTemplate(ctx, tpl.ID, client.TemplatePatch{Name: &name})
		must(err)
		if got.Name != name || got.Version != tpl.Version+1 {
			t.Fatalf("patched %+v", got)
		}
		low := client.PriorityLow
		got, err = op.UpdateTemplate(ctx, tpl.ID, client.TemplatePatch{Priority: &low})
		must(err)
		if got.Priority != client.PriorityLow || got.Name != name || got.Version != tpl.Version+2 {
			t.Fatalf("patched priority %+v", got)
		}
		got, err = op.AddStock(ctx, tpl.ID, 1)
		must(err)
		if got.Stock != 3 || got.Remaining != 3 {
			t.Fatalf("after adding stock %+v", got)
		}
	}

	{ // claims and coupons
		c1, created, err := op.Claim(ctx, tpl.ID, client.ClaimRequest{UserID: 1, RequestID: "r-1"}, as(1))
		must(err)
		if !created || c1.UserID != 1 || c1.Status != client.CouponUnused || c1.RequestID != "r-1" {
			t.Fatalf("claimed %+v created %v", c1, created)
		}
		again, created, err := op.Claim(ctx, tpl.ID, client.ClaimRequest{UserID: 1, RequestID: "r-1"}, as(1))
		must(err)
		if created || again.ID != c1.ID {
			t.Fatalf("the same request_id again: %+v created %v, want coupon %d, not created", again, created, c1.ID)
		}
		_, _, err = op.Claim(ctx, tpl.ID, client.ClaimRequest{UserID: 1, RequestID: "r-1b"}, as(1))
		want(err, client.ErrLimitReached)
		_, _, err = op.Claim(ctx, tpl.ID, client.ClaimRequest{UserID: 1}, as(2))
		want(err, client.ErrForbidden)
		_, _, err = op.Claim(ctx, tpl.ID, client.ClaimRequest{UserID: 2}) // as the operator, a random request_id
		must(err)
		_, _, err = op.Claim(ctx, tpl.ID, client.ClaimRequest{UserID: 3}, as(3))
		must(err)
		_, _, err = op.Claim(ctx, tpl.ID, client.ClaimRequest{UserID: 4}, as(4))
		want(err, client.ErrSoldOut)

		order := client.OrderRequest{UserID: 1, OrderID: "o-1"}
		c, err := op.Lock(ctx, c1.ID, order, as(1))
		must(err)
		if c.Status != client.CouponLocked || c.OrderID != "o-1" {
			t.Fatalf("locked %+v", c)
		}
		_, err = op.Lock(ctx, c1.ID, client.OrderRequest{UserID: 1, OrderID: "o-2"}, as(1))
		want(err, client.ErrLocked)
		c, err = op.Unlock(ctx, c1.ID, order, as(1))
		must(err)
		if c.Status != client.CouponUnused || c.OrderID != "" {
			t.Fatalf("unlocked %+v", c)
		}
		c, err = op.Redeem(ctx, c1.ID, order, as(1))
		must(err)
		if c.Status != client.CouponUsed || c.UsedAt == nil {
			t.Fatalf("redeemed %+v", c)
		}
		_, err = op.Redeem(ctx, c1.ID, client.OrderRequest{UserID: 1, OrderID: "o-3"}, as(1))
		want(err, client.ErrAlreadyUsed)
		_, err = op.Lock(ctx, c1.ID, client.OrderRequest{UserID: 5, OrderID: "o-1"}, as(5))
		want(err, client.ErrCouponNotFound)
		for _, tc := range []struct {
			status string
			n      int
		}{{"", 1}, {client.CouponUsed, 1}, {client.CouponUnused, 0}} {
			cs, err := op.Coupons(ctx, 1, tc.status, as(1))
			must(err)
			if len(cs) != tc.n {
				t.Fatalf("status %q: %d coupons, want %d", tc.status, len(cs), tc.n)
			}
		}
	}

	{ // subscriptions
		later := hot
		later.GrabStart, later.GrabEnd = now.Add(time.Hour), now.Add(2*time.Hour)
		var ids []int64
		for range 3 {
			tp, err := op.CreateTemplate(ctx, later)
			must(err)
			ids = append(ids, tp.ID)
		}
		const user = 50
		for i, id := range ids {
			s, created, err := op.Subscribe(ctx, user, id, client.SubscribeRequest{LeadSeconds: 120}, as(user), client.WaitRateLimited())
			must(err)
			if !created || s.Status != client.SubscriptionPending || !s.PushAt.Equal(later.GrabStart.Add(-2*time.Minute).Truncate(time.Millisecond)) {
				t.Fatalf("subscription %d: %+v created %v", i, s, created)
			}
		}
		s, created, err := op.Subscribe(ctx, user, ids[0], client.SubscribeRequest{}, as(user), client.WaitRateLimited())
		must(err)
		if created || s.Status != client.SubscriptionPending {
			t.Fatalf("subscribed again: %+v created %v", s, created)
		}
		page, err := op.Subscriptions(ctx, user, client.Page{Limit: 2}, as(user))
		must(err)
		if len(page.Subscriptions) != 2 || page.NextAfter != ids[1] {
			t.Fatalf("first page %+v, want 2 and next_after %d", page, ids[1])
		}
		var all []int64
		for s, err := range op.AllSubscriptions(ctx, user, 1, as(user)) {
			must(err)
			all = append(all, s.TemplateID)
		}
		if !slices.Equal(all, ids) {
			t.Fatalf("all subscriptions %v, want %v", all, ids)
		}
		must(op.Unsubscribe(ctx, user, ids[2], as(user), client.WaitRateLimited()))
		err = op.Unsubscribe(ctx, user+1, ids[2], as(user+1))
		want(err, client.ErrSubscriptionNotFound)
		_, err = op.Subscriptions(ctx, user, client.Page{}, as(user+1))
		want(err, client.ErrForbidden)

		// Over the per-user limit of 1/s: the 429 comes back with its
		// Retry-After, unless the call waits it out.
		var limited error
		for range 50 {
			if _, _, err := op.Subscribe(ctx, user, ids[0], client.SubscribeRequest{}, as(user)); err != nil {
				limited = err
				break
			}
		}
		want(limited, client.ErrRateLimited)
		if client.RetryAfter(limited) < time.Second {
			t.Fatalf("rate_limited with Retry-After %v, want at least 1s", client.RetryAfter(limited))
		}
		_, _, err = op.Subscribe(ctx, user, ids[0], client.SubscribeRequest{}, as(user), client.WaitRateLimited())
		must(err)
	}

	{ // blocks
		b, err := op.BlockUser(ctx, 7, client.BlockRequest{ForSeconds: 60, Reason: "client test"})
		must(err)
		if b.Kind != client.BlockUser || b.Subject != "7" || b.Who != "operator" || b.Reason != "client test" {
			t.Fatalf("block %+v", b)
		}
		_, _, err = op.Claim(ctx, tpl.ID, client.ClaimRequest{UserID: 7}, as(7))
		want(err, client.ErrBlocked)
		_, err = op.Blocks(ctx, as(7))
		want(err, client.ErrForbidden)
		ip := netip.MustParseAddr("203.0.113.9")
		b, err = op.BlockIP(ctx, ip, client.BlockRequest{ForSeconds: 60, Reason: "client test"})
		must(err)
		if b.Kind != client.BlockIP || b.Subject != ip.String() {
			t.Fatalf("block %+v", b)
		}
		bs, err := op.Blocks(ctx)
		must(err)
		if len(bs) != 2 {
			t.Fatalf("blocks %+v, want 2", bs)
		}
		must(op.ReleaseUser(ctx, 7))
		want(op.ReleaseUser(ctx, 7), client.ErrBlockNotFound)
		must(op.ReleaseIP(ctx, ip))
		want(op.ReleaseIP(ctx, ip), client.ErrBlockNotFound)
	}

	if t.Failed() {
		return
	}
	var missed []string
	for _, r := range httpapi.Routes() {
		if !check.seen[r] {
			missed = append(missed, r)
		}
	}
	if len(missed) > 0 {
		t.Fatalf("the client never called %v", missed)
	}
}
