package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"couponpush/cluster"
	"couponpush/internal/enginetest"
	"couponpush/queue"
	"couponpush/trace"
)

const operatorToken = "op-token-0123456789abcdef"

// fakes of the narrow interfaces: enough state to check what the console
// reads and does.

type fakeQueues struct {
	mu       sync.Mutex
	paused   bool
	replays  []int
	failing  error
	noLayout bool // as before N ever changed
}

func (f *fakeQueues) LayoutStatus(context.Context) (queue.LayoutStatus, bool, error) {
	if f.noLayout {
		return queue.LayoutStatus{}, false, nil
	}
	return queue.LayoutStatus{Layout: queue.Layout{Gen: 1, From: 2, To: 2, Span: 2}}, true, nil
}
func (f *fakeQueues) Inspect(_ context.Context, span int) ([]queue.QueueInfo, error) {
	out := make([]queue.QueueInfo, span)
	for i := range out {
		out[i] = queue.QueueInfo{Queue: i, Users: 10, DueUsers: int64(3 + i), LeaseHeld: true, LeaseHolder: "w1",
			EarliestDue: time.Unix(1000, 0)}
	}
	return out, nil
}
func (f *fakeQueues) Time(context.Context) (time.Time, error) { return time.Unix(1002, 0), nil }
func (f *fakeQueues) Paused(context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paused, nil
}
func (f *fakeQueues) set(p bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing != nil {
		return f.failing
	}
	f.paused = p
	return nil
}
func (f *fakeQueues) Pause(context.Context) error  { return f.set(true) }
func (f *fakeQueues) Resume(context.Context) error { return f.set(false) }
func (f *fakeQueues) Replay(_ context.Context, q int, _ []queue.DeadPush) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replays = append(f.replays, q)
	return 1, nil
}

type fakeCluster struct {
	mu     sync.Mutex
	n      int
	idx    uint64
	absent bool // no N in Consul
}

func (f *fakeCluster) Workers(context.Context, string) ([]cluster.Worker, error) {
	return []cluster.Worker{
		{ID: "w1", Address: "127.0.0.1", Port: 8080, Status: "passing", Meta: map[string]string{"roles": "[api scheduler]", "ops_addr": "w1:9090"}},
		{ID: "w2", Address: "127.0.0.1", Port: 8081, Status: "critical", Meta: map[string]string{"roles": "[scheduler]", "ops_addr": "w2:9090"}},
		{ID: "w3", Status: "passing", Meta: map[string]string{}},
	}, nil
}
func (f *fakeCluster) QueueCount(context.Context) (int, uint64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.absent {
		return 0, 0, false, nil
	}
	return f.n, f.idx, true, nil
}
func (f *fakeCluster) SetQueueCount(_ context.Context, n int, cas uint64) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cas != f.idx {
		return false, nil
	}
	f.n, f.idx = n, f.idx+1
	return true, nil
}
func (f *fakeCluster) QueueCountKey() string { return "test/queues/count" }

type fakeStore struct {
	mu    sync.Mutex
	audit []Audit
	down  bool
}

func (f *fakeStore) LiveTemplates(context.Context, time.Time, int) ([]Template, error) {
	return []Template{{ID: 7, Name: "drop", Stock: 100, GrabStart: time.Unix(2000, 0), GrabEnd: time.Unix(3000, 0)}}, nil
}
func (f *fakeStore) Subscribers(context.Context, []int64) (map[int64]Subscribers, error) {
	return map[int64]Subscribers{7: {Pending: 50, Sent: 40, Cancelled: 2, FirstPending: time.Unix(990, 0)}}, nil
}
func (f *fakeStore) Issued(context.Context, []int64) (map[int64]int64, error) {
	return map[int64]int64{7: 30}, nil
}
func (f *fakeStore) BeginAudit(_ context.Context, a Audit) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return 0, errors.New("mysql down")
	}
	a.ID = int64(len(f.audit) + 1)
	f.audit = append(f.audit, a)
	return a.ID, nil
}
func (f *fakeStore) SettleAudit(_ context.Context, id int64, result, msg string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audit[id-1].Result, f.audit[id-1].Message = result, msg
	return nil
}
func (f *fakeStore) AuditLog(context.Context, int) ([]Audit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Audit(nil), f.audit...), nil
}

type fakeStock struct{}

func (fakeStock) Remaining(context.Context, int64) (int64, error) { return 65, nil }

type fakeTracer struct{}

func (fakeTracer) Trace(_ context.Context, id int64) (trace.User, error) {
	return trace.User{UserID: id, Recorded: true, Layout: queue.LayoutStatus{Layout: queue.Layout{Gen: 1, From: 2, To: 2, Span: 2}}, Queues: []int{1},
		Reminders: []trace.Reminder{{TemplateID: 7, Status: "pending", PushAt: time.Unix(990, 0), Version: 1,
			Redis: []trace.Entry{{Queue: 1, State: queue.StatePending, Version: 1, PushAt: time.Unix(990, 0)}}}}}, nil
}

// fakeScraper serves a text exposition per address; published grows by
// step on every scrape of w1.
type fakeScraper struct {
	mu        sync.Mutex
	published float64
}

func (f *fakeScraper) Scrape(_ context.Context, addr string) (map[string]*dto.MetricFamily, error) {
	if addr == "w2:9090" {
		return nil, errors.New("connection refused")
	}
	f.mu.Lock()
	f.published += 10
	p := f.published
	f.mu.Unlock()
	text := fmt.Sprintf(`# TYPE couponpush_template_due_total counter
couponpush_template_due_total{template="7"} %[1]g
# TYPE couponpush_template_published_total counter
couponpush_template_published_total{template="7"} %[1]g
# TYPE couponpush_claims_total counter
couponpush_claims_total{code="issued"} 30
couponpush_claims_total{code="sold_out"} 4
# TYPE couponpush_dead_letters gauge
couponpush_dead_letters{queue="1"} 2
# TYPE couponpush_template_push_lateness_seconds histogram
couponpush_template_push_lateness_seconds_bucket{template="7",le="0.01"} 50
couponpush_template_push_lateness_seconds_bucket{template="7",le="0.1"} 100
couponpush_template_push_lateness_seconds_bucket{template="7",le="+Inf"} 100
couponpush_template_push_lateness_seconds_sum{template="7"} 3
couponpush_template_push_lateness_seconds_count{template="7"} 100
# TYPE couponpush_build_info gauge
couponpush_build_info{version="v1.2.3",revision="abc"} 1
`, p)
	return ParseMetrics(strings.NewReader(text))
}

type fixture struct {
	c       *Console
	srv     *httptest.Server
	queues  *fakeQueues
	cluster *fakeCluster
	store   *fakeStore
	clock   *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{queues: &fakeQueues{}, cluster: &fakeCluster{n: 2, idx: 5}, store: &fakeStore{}, clock: &clock{t: time.Unix(1000, 0)}}
	c, err := New(Config{ServiceName: "svc", RedisPrefix: "pfx", Now: f.clock.now},
		Deps{Operator: func(tok string) bool { return tok == operatorToken }, Queues: f.queues, Cluster: f.cluster,
			Store: f.store, Stock: fakeStock{}, Tracer: fakeTracer{}, Scraper: &fakeScraper{}})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	mux := http.NewServeMux()
	mux.Handle(DefaultPath, c)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, as a browser's fetch would see them.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

type jar struct {
	mu sync.Mutex
	cs []*http.Cookie
}

func (j *jar) SetCookies(_ *url.URL, cs []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, c := range cs {
		if c.MaxAge < 0 {
			j.cs = nil
			continue
		}
		j.cs = []*http.Cookie{c}
	}
}
func (j *jar) Cookies(*url.URL) []*http.Cookie { j.mu.Lock(); defer j.mu.Unlock(); return j.cs }

func (f *fixture) browser(t *testing.T) *browser {
	return &browser{t: t, base: f.srv.URL + DefaultPath, hc: &http.Client{Jar: &jar{},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path, body string, hdr map[string]string) (int, string, http.Header) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), resp.Header
}

var csrfMeta = regexp.MustCompile(`name="csrf-token" content="([0-9a-f]+)"`)

func (b *browser) login(token string) int {
	b.t.Helper()
	status, _, _ := b.do("POST", "login", url.Values{"token": {token}}.Encode(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if status == http.StatusSeeOther {
		_, page, _ := b.do("GET", "", "", nil)
		if m := csrfMeta.FindStringSubmatch(page); m != nil {
			b.csrf = m[1]
		}
	}
	return status
}

func (b *browser) post(path, body string) (int, string) {
	b.t.Helper()
	status, out, _ := b.do("POST", path, body, map[string]string{"Content-Type": "application/json", "X-CSRF-Token": b.csrf})
	return status, out
}

func TestLogin(t *testing.T) {
	f := newFixture(t)
	t.Run("no session: the page sends to the login form, the API answers 401", func(t *testing.T) {
		b := f.browser(t)
		status, _, h := b.do("GET", "", "", nil)
		if status != http.StatusSeeOther || h.Get("Location") != DefaultPath+"login" {
			t.Fatalf("GET page: %d %q", status, h.Get("Location"))
		}
		if status, _, _ := b.do("GET", "api/overview", "", nil); status != http.StatusUnauthorized {
			t.Fatalf("GET api: %d", status)
		}
	})
	t.Run("a wrong token sets no cookie", func(t *testing.T) {
		b := f.browser(t)
		if status := b.login("not-the-token-at-all"); status != http.StatusUnauthorized {
			t.Fatalf("login: %d", status)
		}
		if status, _, _ := b.do("GET", "api/overview", "", nil); status != http.StatusUnauthorized {
			t.Fatalf("GET api after a refused login: %d", status)
		}
	})
	t.Run("the operator token makes a strict HttpOnly session", func(t *testing.T) {
		b := f.browser(t)
		status, _, h := b.do("POST", "login", url.Values{"token": {operatorToken}}.Encode(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if status != http.StatusSeeOther {
			t.Fatalf("login: %d", status)
		}
		ck := h.Get("Set-Cookie")
		for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=" + DefaultPath} {
			if !strings.Contains(ck, want) {
				t.Errorf("cookie %q lacks %s", ck, want)
			}
		}
		if strings.Contains(ck, "Secure") {
			t.Errorf("cookie %q is Secure over plain HTTP", ck)
		}
		if strings.Contains(ck, operatorToken) {
			t.Errorf("cookie %q holds the token", ck)
		}
		if status, _, _ := b.do("GET", "api/overview", "", nil); status != http.StatusOK {
			t.Fatalf("GET api with the session: %d", status)
		}
	})
	t.Run("a bearer token works without a session", func(t *testing.T) {
		b := f.browser(t)
		if status, _, _ := b.do("GET", "api/audit", "", map[string]string{"Authorization": "Bearer " + operatorToken}); status != http.StatusOK {
			t.Fatalf("bearer: %d", status)
		}
		if status, _, _ := b.do("GET", "api/audit", "", map[string]string{"Authorization": "Bearer nope"}); status != http.StatusUnauthorized {
			t.Fatalf("wrong bearer: %d", status)
		}
	})
	t.Run("logout ends the session", func(t *testing.T) {
		b := f.browser(t)
		b.login(operatorToken)
		if status, _ := b.post("logout", ""); status != http.StatusNoContent {
			t.Fatalf("logout: %d", status)
		}
		if status, _, _ := b.do("GET", "api/overview", "", nil); status != http.StatusUnauthorized {
			t.Fatalf("GET api after logout: %d", status)
		}
	})
}

func TestCSRF(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.login(operatorToken)
	if b.csrf == "" {
		t.Fatal("the page carries no CSRF token")
	}
	body := `{"action":"pause"}`
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no CSRF token", map[string]string{}, http.StatusForbidden},
		{"wrong CSRF token", map[string]string{"X-CSRF-Token": "00"}, http.StatusForbidden},
		{"another origin", map[string]string{"X-CSRF-Token": b.csrf, "Origin": "http://evil.example"}, http.StatusForbidden},
		{"same origin and token", map[string]string{"X-CSRF-Token": b.csrf, "Origin": f.srv.URL}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.hdr["Content-Type"] = "application/json"
			if status, out, _ := b.do("POST", "api/actions", body, tc.hdr); status != tc.want {
				t.Fatalf("POST: %d %s, want %d", status, out, tc.want)
			}
		})
	}
	if f.queues.paused {
		t.Fatal("a prepare paused the cluster")
	}
}

func TestActions(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.login(operatorToken)
	prepare := func(t *testing.T, body string) (int, map[string]string) {
		t.Helper()
		status, out := b.post("api/actions", body)
		var m map[string]string
		_ = json.Unmarshal([]byte(out), &m)
		return status, m
	}
	confirm := func(t *testing.T, id string) (int, map[string]any) {
		t.Helper()
		status, out := b.post("api/actions/"+id+"/confirm", "")
		var m map[string]any
		_ = json.Unmarshal([]byte(out), &m)
		return status, m
	}

	t.Run("pause waits for its confirm, then pauses and is audited", func(t *testing.T) {
		status, p := prepare(t, `{"action":"pause"}`)
		if status != http.StatusOK || p["id"] == "" || !strings.Contains(p["summary"], `"pfx"`) {
			t.Fatalf("prepare: %d %v", status, p)
		}
		if f.queues.paused {
			t.Fatal("paused before the confirm")
		}
		if status, r := confirm(t, p["id"]); status != http.StatusOK || r["result"] != "ok" {
			t.Fatalf("confirm: %d %v", status, r)
		}
		if !f.queues.paused {
			t.Fatal("not paused after the confirm")
		}
		if status, _ := confirm(t, p["id"]); status != http.StatusNotFound {
			t.Fatalf("a second confirm: %d", status)
		}
		a := f.store.audit[len(f.store.audit)-1]
		if a.Action != ActionPause || a.Result != "ok" || a.Operator != Fingerprint(operatorToken) || strings.Contains(a.Operator, operatorToken) {
			t.Fatalf("audit: %+v", a)
		}
	})
	t.Run("a cancelled action never runs", func(t *testing.T) {
		_, p := prepare(t, `{"action":"resume"}`)
		if status, _ := b.post("api/actions/"+p["id"]+"/cancel", ""); status != http.StatusNoContent {
			t.Fatalf("cancel: %d", status)
		}
		if status, _ := confirm(t, p["id"]); status != http.StatusNotFound || !f.queues.paused {
			t.Fatalf("confirm after cancel: %d, paused %v", status, f.queues.paused)
		}
	})
	t.Run("an expired action never runs", func(t *testing.T) {
		_, p := prepare(t, `{"action":"resume"}`)
		f.clock.add(confirmTTL + time.Second)
		if status, _ := confirm(t, p["id"]); status != http.StatusNotFound || !f.queues.paused {
			t.Fatalf("confirm after expiry: %d, paused %v", status, f.queues.paused)
		}
	})
	t.Run("only the operator who prepared it confirms", func(t *testing.T) {
		cs := newConfirms(f.clock.now)
		id := cs.add(&prepared{operator: "op:a"})
		if _, ok := cs.take(id, "op:b"); ok {
			t.Fatal("another operator took it")
		}
		if _, ok := cs.take(id, "op:a"); !ok {
			t.Fatal("its operator could not take it")
		}
	})
	t.Run("set N writes with check-and-set", func(t *testing.T) {
		_, p := prepare(t, `{"action":"set_queue_count","count":4}`)
		if !strings.Contains(p["detail"], "2 -> 4") {
			t.Fatalf("detail %q", p["detail"])
		}
		if status, r := confirm(t, p["id"]); status != http.StatusOK || f.cluster.n != 4 {
			t.Fatalf("confirm: %d %v, N %d", status, r, f.cluster.n)
		}
		_, p = prepare(t, `{"action":"set_queue_count","count":6}`)
		f.cluster.SetQueueCount(context.Background(), 5, f.cluster.idx) // someone else, meanwhile
		if status, r := confirm(t, p["id"]); status != http.StatusBadGateway || f.cluster.n != 5 || r["result"] != "failed" {
			t.Fatalf("confirm after a concurrent change: %d %v, N %d", status, r, f.cluster.n)
		}
		if a := f.store.audit[len(f.store.audit)-1]; a.Result != "failed" {
			t.Fatalf("audit of the lost CAS: %+v", a)
		}
	})
	t.Run("replay goes over every queue of the span", func(t *testing.T) {
		_, p := prepare(t, `{"action":"replay_dead_letters"}`)
		if status, r := confirm(t, p["id"]); status != http.StatusOK || r["message"] != "2 pushes replayed" {
			t.Fatalf("confirm: %d %v", status, r)
		}
	})
	for _, tc := range []struct{ name, body string }{
		{"unknown action", `{"action":"drop_tables"}`},
		{"N out of range", `{"action":"set_queue_count","count":0}`},
		{"N already set", `{"action":"set_queue_count","count":5}`},
		{"count on pause", `{"action":"pause","count":3}`},
		{"unknown field", `{"action":"pause","force":true}`},
		{"not JSON", `pause`},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			n := len(f.store.audit)
			if status, _ := prepare(t, tc.body); status != http.StatusBadRequest {
				t.Fatalf("prepare: %d", status)
			}
			if len(f.store.audit) != n {
				t.Fatal("a refused action was audited")
			}
		})
	}
	t.Run("no audit log, no action", func(t *testing.T) {
		_, p := prepare(t, `{"action":"resume"}`)
		f.store.mu.Lock()
		f.store.down = true
		f.store.mu.Unlock()
		defer func() { f.store.mu.Lock(); f.store.down = false; f.store.mu.Unlock() }()
		if status, _ := confirm(t, p["id"]); status != http.StatusServiceUnavailable || !f.queues.paused {
			t.Fatalf("confirm without audit: %d, paused %v", status, f.queues.paused)
		}
	})
}

func TestOverview(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for range 3 {
		f.c.sampler.sample(ctx)
		f.clock.add(time.Second)
	}
	o := f.c.buildOverview(ctx, "op")
	if o.Queues.Count != 2 || len(o.Queues.Queues) != 2 || o.Queues.DueUsers != 7 || o.Queues.Dead != 2 || o.Queues.MaxLagMs != 2000 {
		t.Fatalf("queues: %+v", o.Queues)
	}
	if len(o.Workers) != 3 || o.Workers[0].Scrape != "ok" || o.Workers[0].Version != "v1.2.3" || o.Workers[0].Leases != 2 ||
		!strings.Contains(o.Workers[1].Scrape, "refused") || !strings.Contains(o.Workers[2].Scrape, "ops_addr") {
		t.Fatalf("workers: %+v", o.Workers)
	}
	if len(o.Drops) != 1 {
		t.Fatalf("drops: %+v", o.Drops)
	}
	d := o.Drops[0]
	if d.Pending != 50 || d.Sent != 40 || d.Published != 30 || len(d.Chart) != 3 || d.P50Ms != 10 || d.P99Ms != 98.2 {
		t.Fatalf("drop: %+v", d)
	}
	// 10 items/s, 50 pending, 1000 s before the grab start: on time.
	if o.PublishRate != 10 || d.Forecast != ForecastOnTime || d.ETA == "" {
		t.Fatalf("rate %v, drop %+v", o.PublishRate, d)
	}
	c := o.Coupons
	if c.Claims["issued"] != 30 || c.Claims["sold_out"] != 4 || c.Templates[0].Remaining != 65 || c.Templates[0].Drift != 5 {
		t.Fatalf("coupons: %+v", c)
	}
}

func TestForecast(t *testing.T) {
	now := time.Unix(1000, 0)
	grab := now.Add(time.Minute)
	for _, tc := range []struct {
		name    string
		pending int64
		first   time.Time
		rate    float64
		want    string
	}{
		{"nothing pending", 0, time.Time{}, 0, ForecastDone},
		{"drains in 10 s", 100, now, 10, ForecastOnTime},
		{"needs 100 s", 1000, now, 10, ForecastWillMiss},
		{"first due later, then 10 s", 100, now.Add(45 * time.Second), 10, ForecastOnTime},
		{"first due later, then 20 s", 200, now.Add(45 * time.Second), 10, ForecastWillMiss},
		{"not due yet", 100, now.Add(time.Second), 0, ForecastNotDue},
		{"due, nothing published", 100, now.Add(-time.Second), 0, ForecastNoRate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := forecast(now, tc.pending, tc.first, tc.rate, grab); got != tc.want {
				t.Fatalf("forecast = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	h := &hist{bounds: []float64{0.1, 1, math.Inf(1)}, counts: []float64{50, 90, 100}, count: 100}
	for _, tc := range []struct {
		q, want float64
	}{{0.5, 0.1}, {0.25, 0.05}, {0.7, 0.55}, {0.95, 1}} {
		t.Run(fmt.Sprint(tc.q), func(t *testing.T) {
			if got := h.quantile(tc.q); math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
	if got := (&hist{}).quantile(0.5); !math.IsNaN(got) {
		t.Fatalf("empty: %v", got)
	}
}

func TestRing(t *testing.T) {
	r := newRing(3)
	for i := range 5 {
		r.push(point{at: time.Unix(int64(i), 0)})
	}
	pts := r.points()
	if len(pts) != 3 || pts[0].at.Unix() != 2 || pts[2].at.Unix() != 4 {
		t.Fatalf("points: %v", pts)
	}
}

func TestUserAndAudit(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.login(operatorToken)
	for _, tc := range []struct {
		path string
		want int
		has  string
	}{
		{"api/user/42", http.StatusOK, `"queues":[1]`},
		{"api/user/0", http.StatusBadRequest, "positive"},
		{"api/user/x", http.StatusBadRequest, "positive"},
		{"api/audit", http.StatusOK, `"audit":[]`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			status, out, _ := b.do("GET", tc.path, "", nil)
			if status != tc.want || !strings.Contains(out, tc.has) {
				t.Fatalf("%d %s", status, out)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	ok := Config{ServiceName: "s"}.WithDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"no service", func(c *Config) { c.ServiceName = "" }},
		{"bad path", func(c *Config) { c.Path = "console" }},
		{"too many templates", func(c *Config) { c.MaxTemplates = MaxTemplates + 1 }},
		{"negative timeout", func(c *Config) { c.ScrapeTimeout = -1 }},
		{"history under a sample", func(c *Config) { c.History = time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := New(Config{ServiceName: "s"}, Deps{}); err == nil {
		t.Fatal("New accepted no deps")
	}
}

func TestSamplerIdles(t *testing.T) {
	f := newFixture(t)
	f.c.cfg.IdleAfter = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := f.c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.c.Stop()
	b := f.browser(t)
	b.login(operatorToken)
	enginetest.Eventually(t, "the sampler samples after a request", 10*time.Second, func() bool {
		snap, _ := f.c.sampler.current()
		return len(snap.workers) > 0
	})
	f.c.Stop()
	f.c.Stop() // idempotent
}

// TestOverviewBeforeAnySampleAndWithoutN: the first look samples at once
// (no empty page while the sampler wakes), and before N was ever set or
// changed (no key in Consul, no layout in Redis) the console shows the
// queues of the N the workers follow.
func TestOverviewBeforeAnySampleAndWithoutN(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c, err := New(Config{ServiceName: "svc", RedisPrefix: "pfx", Now: clk.now},
		Deps{Operator: func(tok string) bool { return tok == operatorToken }, Queues: &fakeQueues{noLayout: true},
			Cluster: &fakeCluster{absent: true}, Store: &fakeStore{}, Stock: fakeStock{}, Tracer: fakeTracer{},
			Scraper: &fakeScraper{}, Count: func() int { return 3 }})
	if err != nil {
		t.Fatal(err)
	}
	o := c.buildOverview(context.Background(), "op")
	if q := o.Queues; q.Found || q.Recorded || q.Count != 3 || q.Span != 3 || len(q.Queues) != 3 {
		t.Fatalf("queues: %+v, want the default N of 3 with its 3 queues", q)
	}
	if len(o.Workers) != 3 {
		t.Fatalf("workers: %+v, want the 3 of the catalog in the first answer", o.Workers)
	}
}
