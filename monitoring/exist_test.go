package monitoring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"couponpush/client"
	"couponpush/config"
	"couponpush/internal/enginetest"
	"couponpush/worker"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

// prometheusMade are the series Prometheus makes itself for every target:
// no worker exports them.
var prometheusMade = []string{"up"}

// referencedNames returns every metric name the rules and the dashboard
// read, each with where it is read.
func referencedNames(t *testing.T) map[string][]string {
	t.Helper()
	refs := map[string][]string{}
	add := func(where, expr string) {
		names, err := MetricNames(expr)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		for _, n := range names {
			refs[n] = append(refs[n], where)
		}
	}
	for _, r := range loadRules(t) {
		add("rule "+r.Alert, r.Expr)
	}
	for _, q := range dashboardQueries(t, loadDashboard(t)) {
		add(q.where, q.expr)
	}
	return refs
}

// missingNames returns the referenced names a scrape lacks: a name is there
// if a family of that name is, or if it is the _bucket, _sum or _count
// series of a histogram family (_sum and _count of a summary).
func missingNames(refs map[string][]string, fams map[string]*dto.MetricFamily) []string {
	var missing []string
	for name := range refs {
		if slices.Contains(prometheusMade, name) {
			continue
		}
		if f, ok := fams[name]; ok && len(f.GetMetric()) > 0 {
			continue
		}
		found := false
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base, ok := strings.CutSuffix(name, suffix)
			if !ok {
				continue
			}
			f, ok := fams[base]
			if !ok || len(f.GetMetric()) == 0 {
				continue
			}
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				found = true
			case dto.MetricType_SUMMARY:
				found = suffix != "_bucket"
			}
		}
		if !found {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	return missing
}

func TestMissingNames(t *testing.T) {
	hist, counter, summary := dto.MetricType_HISTOGRAM, dto.MetricType_COUNTER, dto.MetricType_SUMMARY
	fam := func(name string, typ dto.MetricType) *dto.MetricFamily {
		return &dto.MetricFamily{Name: &name, Type: &typ, Metric: []*dto.Metric{{}}}
	}
	fams := map[string]*dto.MetricFamily{
		"lat_seconds": fam("lat_seconds", hist), "pushes_total": fam("pushes_total", counter),
		"rpc_seconds": fam("rpc_seconds", summary), "empty": {Name: new(string)},
	}
	for _, tc := range []struct {
		name string
		refs []string
		want []string
	}{
		{"plain family", []string{"pushes_total"}, nil},
		{"histogram series", []string{"lat_seconds_bucket", "lat_seconds_sum", "lat_seconds_count"}, nil},
		{"summary has no buckets", []string{"rpc_seconds_sum", "rpc_seconds_bucket"}, []string{"rpc_seconds_bucket"}},
		{"counter has no buckets", []string{"pushes_total_bucket"}, []string{"pushes_total_bucket"}},
		{"family without series", []string{"empty"}, []string{"empty"}},
		{"absent", []string{"nope", "up"}, []string{"nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refs := map[string][]string{}
			for _, r := range tc.refs {
				refs[r] = []string{"test"}
			}
			if got := missingNames(refs, fams); !slices.Equal(got, tc.want) {
				t.Errorf("missingNames(%q) = %q, want %q", tc.refs, got, tc.want)
			}
		})
	}
}

func scrape(url string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// TestMetricsExist starts a worker with every role on the real engines,
// drives a small drop through it (subscriptions due now, a claim, a 429, a
// block), scrapes /metrics of its ops listener (what Prometheus scrapes)
// and checks that every metric the rules and the dashboard read is there,
// labelled series included.
func TestMetricsExist(t *testing.T) {
	ctx := context.Background()
	refs := referencedNames(t)
	prefix := enginetest.Prefix(t)
	tcp, _ := enginetest.NSQD(t)
	addr := enginetest.FreeAddr(t)
	wc := config.Worker{
		HTTPAddr: addr, OpsAddr: "127.0.0.1:0", RedisAddrs: []string{enginetest.RedisAddr(t)}, RedisPrefix: prefix,
		MySQLDSN: enginetest.MySQL(t), NSQDAddr: tcp, Topic: prefix,
		ConsulAddr: enginetest.Consul(t), ConsulPrefix: prefix,
		ServiceName: strings.ToLower(strings.ReplaceAll(prefix, "_", "-")), WorkerID: prefix + "-w1",
		Auth: config.AuthOff,
		// One claim a second per user, so a second claim at once is a 429.
		LimitClaimUserRate: 1, LimitClaimUserBurst: 1,
		TemplateRefreshEvery: config.Duration(100 * time.Millisecond), CouponReconcileEvery: config.Duration(200 * time.Millisecond),
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
	ops := "http://" + w.OpsAddr()
	api, err := client.New(client.Config{BaseURL: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	until := func(d time.Duration) *time.Time { v := at(d); return &v }

	// The drop: grab start in 40 minutes; users 1-3 subscribe with a lead
	// that makes their reminders due in 3 s, users 4-5 with the default
	// lead, so reminders stay pending within the hour.
	grab := 40 * time.Minute
	tpl, err := api.CreateTemplate(ctx, client.TemplateDraft{Name: "drop", Type: client.TypeFixed, Value: 100, Stock: 10, SubStocks: 2,
		GrabStart: at(grab), GrabEnd: at(2 * time.Hour), ValidUntil: until(3 * time.Hour)})
	must(err)
	drop := tpl.ID
	for u := int64(1); u <= 5; u++ {
		var r client.SubscribeRequest
		if u <= 3 {
			r.LeadSeconds = int64((grab - 3*time.Second).Seconds())
		}
		_, created, err := api.Subscribe(ctx, u, drop, r)
		must(err)
		if !created {
			t.Fatalf("subscription of user %d: not created", u)
		}
	}

	// Claims on a template whose grab has started: issued, then 429s.
	tpl, err = api.CreateTemplate(ctx, client.TemplateDraft{Name: "open", Type: client.TypeFixed, Value: 100, Stock: 10, SubStocks: 2,
		GrabStart: at(-time.Minute), GrabEnd: at(time.Hour), ValidUntil: until(2 * time.Hour)})
	must(err)
	claim := func(user int64, req string) int {
		_, _, err := api.Claim(ctx, tpl.ID, client.ClaimRequest{UserID: user, RequestID: req})
		var e *client.Error
		switch {
		case err == nil:
			return http.StatusCreated
		case errors.As(err, &e):
			return e.Status
		default:
			t.Fatal(err)
			return 0
		}
	}
	if got := claim(1, "r1"); got != http.StatusCreated {
		t.Fatalf("first claim: %d, want 201", got)
	}
	i := 0
	enginetest.Eventually(t, "a claim refused 429 by the per-user limit", 30*time.Second, func() bool {
		i++
		return claim(2, fmt.Sprint("r2-", i)) == http.StatusTooManyRequests
	})
	// An operator's block, and a claim it refuses.
	_, err = api.BlockUser(ctx, 9, client.BlockRequest{ForSeconds: 600, Reason: "monitoring test"})
	must(err)
	if got := claim(9, "r9"); got != http.StatusForbidden {
		t.Fatalf("claim of a blocked user: %d, want 403", got)
	}

	// The labelled series come as the drop goes on (pushes published, the
	// MySQL counts read): poll until every name is there.
	var missing []string
	var lastErr error
	deadline := time.Now().Add(60 * time.Second)
	for {
		fams, err := scrape(ops + "/metrics")
		lastErr = err
		if err == nil {
			if missing = missingNames(refs, fams); len(missing) == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond) // polling interval, not a wait for an outcome
	}
	if lastErr != nil {
		t.Fatalf("scraping %s/metrics: %v", ops, lastErr)
	}
	var b strings.Builder
	for _, n := range missing {
		fmt.Fprintf(&b, "\n  %s (read by %s)", n, strings.Join(refs[n], "; "))
	}
	t.Fatalf("%d metrics the rules and dashboard read are not exported by a worker with every role:%s", len(missing), b.String())
}
