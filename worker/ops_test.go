package worker_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"couponpush/client"
	"couponpush/cluster"
	"couponpush/config"
	"couponpush/internal/enginetest"
	"couponpush/internal/seed"
	"couponpush/queue"
	"couponpush/worker"
)

// opsCluster is in-process workers sharing one set of engines, each on
// its own API and ops ports.
type opsCluster struct {
	prefix, service, dsn, nsqd string
}

func newOpsCluster(t *testing.T, dsn string) *opsCluster {
	t.Helper()
	tcp, _ := enginetest.NSQD(t)
	prefix := enginetest.Prefix(t)
	return &opsCluster{prefix: prefix, service: strings.ToLower(strings.ReplaceAll(prefix, "_", "-")), dsn: dsn, nsqd: tcp}
}

// opsWorker is one started worker: its API base URL and ops base URL.
type opsWorker struct {
	w        *worker.Worker
	api, ops string
	id       string
}

func (c *opsCluster) start(t *testing.T, id string, roles ...string) opsWorker {
	t.Helper()
	addr := enginetest.FreeAddr(t)
	wc := config.Worker{
		Roles: roles, HTTPAddr: addr, OpsAddr: "127.0.0.1:0", RedisAddrs: []string{enginetest.RedisAddr(t)}, RedisPrefix: c.prefix,
		MySQLDSN: c.dsn, NSQDAddr: c.nsqd, Topic: c.prefix, ConsulAddr: enginetest.Consul(t), ConsulPrefix: c.prefix,
		ServiceName: c.service, WorkerID: c.prefix + "-" + id, Auth: config.AuthOff, RateLimits: config.RateLimitsOff,
		CouponReconcileEvery: config.Duration(200 * time.Millisecond), TemplateRefreshEvery: config.Duration(200 * time.Millisecond),
		Lease: config.Duration(2 * time.Second), LeaseRenew: config.Duration(500 * time.Millisecond), Slots: 2,
	}.WithDefaults()
	if err := wc.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := worker.Start(context.Background(), wc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Stop(); err != nil {
			t.Error(err)
		}
	})
	return opsWorker{w: w, api: "http://" + addr, ops: "http://" + w.OpsAddr(), id: wc.WorkerID}
}

// scrape is one /metrics answer, parsed.
type scrape map[string]*dto.MetricFamily

func scrapeOf(t *testing.T, base string) scrape {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d", base, res.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parse %s/metrics: %v", base, err)
	}
	return fams
}

// value is the value of name's series with the given label pairs (a
// histogram's sample count), and whether there is one.
func (s scrape) value(name string, labels ...string) (float64, bool) {
	f, ok := s[name]
	if !ok {
		return 0, false
	}
metrics:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue metrics
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// sum is the sum of name's series values.
func (s scrape) sum(name string) float64 {
	n := 0.0
	for _, m := range s[name].GetMetric() {
		n += m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	return n
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body
}

// checksOf is the engine names a /readyz body lists.
func checksOf(body map[string]any) []string {
	c, _ := body["checks"].(map[string]any)
	return slices.Sorted(maps.Keys(c))
}

// TestOpsListenerByRole starts an api-only, a scheduler-only, a
// coupon-only and a cron-only worker and checks each one's ops listener:
// /healthz, /readyz naming only the engines its roles need, /console/ not
// mounted, its ops address in Consul, and the series its roles export. Then
// a burst of due reminders (and one of a template that does not exist,
// dead-lettered and counted as template="other") moves the scheduler's
// per-template and queue series and the coupon worker's MySQL counts, and
// claims move the api worker's claim outcomes.
func TestOpsListenerByRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newOpsCluster(t, enginetest.MySQL(t))
	workers := map[string]opsWorker{
		config.RoleAPI:       c.start(t, "api", config.RoleAPI),
		config.RoleScheduler: c.start(t, "sched", config.RoleScheduler),
		config.RoleCoupon:    c.start(t, "coupon", config.RoleCoupon),
		config.RoleCron:      c.start(t, "cron", config.RoleCron),
	}
	api, sched, coupon := workers[config.RoleAPI], workers[config.RoleScheduler], workers[config.RoleCoupon]

	consul, err := cluster.New(cluster.Config{Addr: enginetest.Consul(t), Prefix: c.prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer consul.Close()
	registered, err := consul.Workers(ctx, c.service)
	if err != nil {
		t.Fatal(err)
	}

	everyWorker := []string{"go_goroutines", "go_build_info", "process_cpu_seconds_total", "couponpush_build_info",
		"couponpush_engine_up", "couponpush_queue_count", "couponpush_queue_span", "couponpush_resize_coordinator"}
	for _, tc := range []struct {
		role    string
		engines []string
		has     []string // series the role exports
		hasNot  []string // series of other roles
	}{
		{config.RoleAPI, []string{"consul", "mysql", "redis"},
			[]string{"couponpush_claims_total"},
			[]string{"couponpush_queue_depth", "couponpush_template_pending_reminders", "couponpush_pushes_published_total"}},
		{config.RoleScheduler, []string{"consul", "nsqd", "redis"},
			[]string{"couponpush_pushes_published_total", "couponpush_push_lateness_seconds", "couponpush_queue_depth",
				"couponpush_queue_users", "couponpush_queue_lag_seconds", "couponpush_queue_inflight_chunks", "couponpush_queue_lease_held",
				"couponpush_dead_letters", "couponpush_lease_acquired_total", "couponpush_scheduler_paused",
				"couponpush_scheduler_last_tick_timestamp_seconds", "couponpush_resize_moving", "couponpush_resize_queues_left"},
			[]string{"couponpush_claims_total", "couponpush_template_subscribers"}},
		{config.RoleCoupon, []string{"mysql", "redis"},
			[]string{"couponpush_coupon_stock_drift", "couponpush_template_cache_refreshed_total"},
			[]string{"couponpush_claims_total", "couponpush_queue_depth", "couponpush_reindex_checked_total"}},
		{config.RoleCron, []string{"consul", "mysql", "redis"},
			[]string{"couponpush_reindex_checked_total"},
			[]string{"couponpush_claims_total", "couponpush_queue_depth", "couponpush_coupon_stock_drift"}},
	} {
		t.Run(tc.role, func(t *testing.T) {
			w := workers[tc.role]
			if code, body := getJSON(t, w.ops+"/healthz"); code != http.StatusOK || body["status"] != "ok" {
				t.Fatalf("ops /healthz: %d %v", code, body)
			}
			// The background check (before any /readyz) sets engine_up.
			enginetest.Eventually(t, "couponpush_engine_up of every engine the roles need", 10*time.Second, func() bool {
				return len(scrapeOf(t, w.ops)["couponpush_engine_up"].GetMetric()) == len(tc.engines)
			})
			code, body := getJSON(t, w.ops+"/readyz")
			if got := checksOf(body); code != http.StatusOK || !slices.Equal(got, tc.engines) {
				t.Fatalf("ops /readyz: %d, checks %q, want 200 and %q (%v)", code, got, tc.engines, body)
			}
			// The console is mounted, behind the operator token.
			if code, _ := getJSON(t, w.ops+"/console/api/overview"); code != http.StatusUnauthorized {
				t.Fatalf("ops /console/api/overview without a token: %d, want 401", code)
			}
			i := slices.IndexFunc(registered, func(x cluster.Worker) bool { return x.ID == w.id })
			if i < 0 {
				t.Fatalf("Consul does not list %s", w.id)
			}
			if got := registered[i].Meta["ops_addr"]; got != strings.TrimPrefix(w.ops, "http://") {
				t.Fatalf("Consul lists %s with ops_addr %q, want %q", w.id, got, w.ops)
			}
			m := scrapeOf(t, w.ops)
			for _, name := range slices.Concat(everyWorker, tc.has) {
				if _, ok := m[name]; !ok {
					t.Errorf("%s worker's /metrics lacks %s", tc.role, name)
				}
			}
			for _, name := range tc.hasNot {
				if _, ok := m[name]; ok {
					t.Errorf("%s worker's /metrics has %s, of another role", tc.role, name)
				}
			}
			for _, e := range tc.engines {
				if v, ok := m.value("couponpush_engine_up", "engine", e); !ok || v != 1 {
					t.Errorf("couponpush_engine_up{engine=%q} = %v (present %v), want 1", e, v, ok)
				}
			}
			if got := len(m["couponpush_engine_up"].GetMetric()); got != len(tc.engines) {
				t.Errorf("couponpush_engine_up has %d engines, want %d (only what the roles need)", got, len(tc.engines))
			}
		})
	}
	if t.Failed() {
		return
	}

	cl, err := client.New(client.Config{BaseURL: api.api})
	if err != nil {
		t.Fatal(err)
	}
	create := func(name string, stock int64, grab time.Time) client.Template {
		t.Helper()
		tpl, err := cl.CreateTemplate(ctx, client.TemplateDraft{Name: name, Type: client.TypeFixed, Value: 100, Stock: stock,
			GrabStart: grab, GrabEnd: grab.Add(time.Hour), ValidDays: 1})
		if err != nil {
			t.Fatal(err)
		}
		return tpl
	}
	now := time.Now().UTC()

	t.Run("claims by code", func(t *testing.T) {
		tpl := create("claims", 2, now.Add(-time.Minute))
		for u := int64(1); u <= 3; u++ {
			_, created, err := cl.Claim(ctx, tpl.ID, client.ClaimRequest{UserID: u, RequestID: fmt.Sprint("r", u)})
			if u == 3 {
				if !errors.Is(err, client.ErrSoldOut) {
					t.Fatalf("third claim of a stock of 2: %v, want sold_out", err)
				}
				continue
			}
			if err != nil || !created {
				t.Fatalf("claim of user %d: created %v, %v", u, created, err)
			}
		}
		if _, created, err := cl.Claim(ctx, tpl.ID, client.ClaimRequest{UserID: 1, RequestID: "r1"}); err != nil || created {
			t.Fatalf("the same claim again: created %v, %v; want the first coupon back", created, err)
		}
		m := scrapeOf(t, api.ops)
		for code, want := range map[string]float64{"issued": 2, "sold_out": 1, "replayed": 1, "not_started": 0} {
			if v, ok := m.value("couponpush_claims_total", "code", code); !ok || v != want {
				t.Errorf("couponpush_claims_total{code=%q} = %v (present %v), want %v", code, v, ok, want)
			}
		}
		if v, _ := m.value("couponpush_http_request_seconds", "route", "POST /v1/templates/{template_id}/claims", "status", "201"); v != 2 {
			t.Errorf("couponpush_http_request_seconds count of 201 claims = %v, want 2", v)
		}
	})

	// A burst of reminders due now, written while emitting is paused: the
	// coupon worker counts them pending, the scheduler shows the pause;
	// once resumed, every one is taken, published and marked sent.
	const reminders = 300
	grab := now.Add(time.Minute)
	tpl := create("burst", 1000, grab)
	label := strconv.FormatInt(tpl.ID, 10)
	rdb := redis.NewClient(&redis.Options{Addr: enginetest.RedisAddr(t)})
	defer rdb.Close()
	idx, err := queue.New(rdb, queue.Options{Prefix: c.prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, "the scheduler to see the pause", 10*time.Second, func() bool {
		v, _ := scrapeOf(t, sched.ops).value("couponpush_scheduler_paused")
		return v == 1
	})
	db, err := sql.Open("mysql", c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var entries []queue.Entry
	for u := int64(1); u <= reminders; u++ {
		entries = append(entries, queue.Entry{UserID: u, TemplateID: tpl.ID, PushAt: now, Version: 1})
	}
	// One reminder of a template that does not exist: its push can never
	// be built, so it is dead-lettered, and its template counts as "other".
	entries = append(entries, queue.Entry{UserID: reminders + 1, TemplateID: tpl.ID + 1_000_000, PushAt: now, Version: 1})
	if err := seed.Subscriptions(ctx, db, idx.NewRouter(func() int { return 16 }), 4, entries); err != nil {
		t.Fatal(err)
	}

	enginetest.Eventually(t, "the coupon worker counting the reminders pending", 20*time.Second, func() bool {
		m := scrapeOf(t, coupon.ops)
		p, _ := m.value("couponpush_template_pending_reminders", "template", label)
		s, _ := m.value("couponpush_template_subscribers", "template", label, "status", "pending")
		other, _ := m.value("couponpush_template_pending_reminders", "template", "other")
		return p == reminders && s == reminders && other == 1
	})
	enginetest.Eventually(t, "the scheduler's queues deep", 20*time.Second, func() bool {
		m := scrapeOf(t, sched.ops)
		return m.sum("couponpush_queue_depth") == reminders+1 && m.sum("couponpush_queue_lag_seconds") > 0 &&
			m.sum("couponpush_queue_backlog") > 0 // overdue while paused: a backlog
	})
	before := scrapeOf(t, sched.ops)
	if v, _ := before.value("couponpush_template_published_total", "template", label); v != 0 {
		t.Fatalf("published %v items of the template while paused", v)
	}
	tick, _ := before.value("couponpush_scheduler_last_tick_timestamp_seconds")

	if err := idx.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, "every reminder published, the queues empty", 60*time.Second, func() bool {
		m := scrapeOf(t, sched.ops)
		due, _ := m.value("couponpush_template_due_total", "template", label)
		pub, _ := m.value("couponpush_template_published_total", "template", label)
		late, _ := m.value("couponpush_template_push_lateness_seconds", "template", label)
		pushes, _ := m.value("couponpush_pushes_published_total")
		other, _ := m.value("couponpush_template_due_total", "template", "other")
		dead, _ := m.value("couponpush_pushes_dead_lettered_total")
		return due == reminders && pub == reminders && late == reminders && pushes >= reminders && other == 1 && dead == 1 &&
			m.sum("couponpush_dead_letters") == 1 && m.sum("couponpush_queue_depth") == 0 && m.sum("couponpush_queue_inflight_chunks") == 0
	})
	m := scrapeOf(t, sched.ops)
	if v, _ := m.value("couponpush_template_grab_start_timestamp_seconds", "template", label); v != float64(grab.UnixMilli())/1000 {
		t.Errorf("couponpush_template_grab_start_timestamp_seconds = %v, want %v", v, float64(grab.UnixMilli())/1000)
	}
	if v, _ := m.value("couponpush_lease_acquired_total"); v < 1 {
		t.Errorf("couponpush_lease_acquired_total = %v after a burst", v)
	}
	if v, _ := m.value("couponpush_scheduler_last_tick_timestamp_seconds"); v <= tick {
		t.Errorf("last tick %v did not move past %v", v, tick)
	}
	if v, _ := m.value("couponpush_scheduler_paused"); v != 0 {
		t.Errorf("couponpush_scheduler_paused = %v after resume", v)
	}
	if other, ok := m.value("couponpush_template_published_total", "template", "other"); ok && other != 0 {
		t.Errorf("%v items of template=\"other\" published: only the dead-lettered one was other", other)
	}
	enginetest.Eventually(t, "the coupon worker counting them sent", 20*time.Second, func() bool {
		m := scrapeOf(t, coupon.ops)
		p, _ := m.value("couponpush_template_pending_reminders", "template", label)
		s, _ := m.value("couponpush_template_subscribers", "template", label, "status", "sent")
		return p == 0 && s == reminders
	})
}

// TestReadyzNeedsOnlyTheRolesEngines freezes MySQL under a scheduler-only
// and an api-only worker: the api worker turns unready on both listeners
// and reports couponpush_engine_up{engine="mysql"} 0, while the scheduler,
// which does not need MySQL to be ready, stays ready; all answer /healthz.
func TestReadyzNeedsOnlyTheRolesEngines(t *testing.T) {
	t.Parallel()
	proc, dsn := enginetest.StartMySQL(t)
	c := newOpsCluster(t, dsn)
	api := c.start(t, "api", config.RoleAPI)
	sched := c.start(t, "sched", config.RoleScheduler)
	for _, w := range []opsWorker{api, sched} {
		if code, _ := getJSON(t, w.ops+"/readyz"); code != http.StatusOK {
			t.Fatalf("%s ops /readyz before the freeze: %d", w.id, code)
		}
	}

	proc.Freeze(t)
	t.Cleanup(func() { proc.Thaw(t) }) // before the workers stop
	for _, base := range []string{api.ops, api.api} {
		code, body := getJSON(t, base+"/readyz")
		checks, _ := body["checks"].(map[string]any)
		if code != http.StatusServiceUnavailable || checks["mysql"] != "down" || checks["redis"] != "ok" {
			t.Fatalf("api worker %s/readyz with MySQL frozen: %d %v, want 503 with mysql down", base, code, body)
		}
	}
	if code, body := getJSON(t, sched.ops+"/readyz"); code != http.StatusOK {
		t.Fatalf("scheduler-only worker's /readyz with MySQL frozen: %d %v, want 200", code, body)
	}
	for _, w := range []opsWorker{api, sched} {
		if code, _ := getJSON(t, w.ops+"/healthz"); code != http.StatusOK {
			t.Fatalf("%s ops /healthz with MySQL frozen: %d", w.id, code)
		}
	}
	m := scrapeOf(t, api.ops)
	if v, ok := m.value("couponpush_engine_up", "engine", "mysql"); !ok || v != 0 {
		t.Fatalf(`couponpush_engine_up{engine="mysql"} = %v (present %v) with MySQL frozen, want 0`, v, ok)
	}
	if v, _ := m.value("couponpush_engine_up", "engine", "redis"); v != 1 {
		t.Fatalf(`couponpush_engine_up{engine="redis"} = %v, want 1`, v)
	}

	proc.Thaw(t)
	enginetest.Eventually(t, "the api worker ready again", 20*time.Second, func() bool {
		code, _ := getJSON(t, api.ops+"/readyz")
		return code == http.StatusOK
	})
}
