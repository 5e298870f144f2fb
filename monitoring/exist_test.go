package monitoring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"couponpush/config"
	"couponpush/internal/apiclient"
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

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
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
	addr := freeAddr(t)
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
	base, ops := "http://"+addr, "http://"+w.OpsAddr()
	do := func(method, path string, body any, want int, out any) error {
		return apiclient.Do(ctx, http.DefaultClient, apiclient.Request{Method: method, URL: base + path, Body: body, Want: want, Out: out})
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var tpl struct {
		ID int64 `json:"id"`
	}
	now := time.Now().UTC().Truncate(time.Second)
	rfc := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }

	// The drop: grab start in 40 minutes; users 1-3 subscribe with a lead
	// that makes their reminders due in 3 s, users 4-5 with the default
	// lead, so reminders stay pending within the hour.
	grab := 40 * time.Minute
	must(do("POST", "/v1/templates", map[string]any{"name": "drop", "type": "fixed", "value": 100, "stock": 10, "substocks": 2,
		"grab_start": rfc(grab), "grab_end": rfc(2 * time.Hour), "valid_until": rfc(3 * time.Hour)}, 201, &tpl))
	drop := tpl.ID
	for u := 1; u <= 5; u++ {
		body := map[string]any{}
		if u <= 3 {
			body["lead_seconds"] = int((grab - 3*time.Second).Seconds())
		}
		must(do("PUT", fmt.Sprintf("/v1/subscriptions/%d/%d", u, drop), body, 201, nil))
	}

	// Claims on a template whose grab has started: issued, then 429s.
	must(do("POST", "/v1/templates", map[string]any{"name": "open", "type": "fixed", "value": 100, "stock": 10, "substocks": 2,
		"grab_start": rfc(-time.Minute), "grab_end": rfc(time.Hour), "valid_until": rfc(2 * time.Hour)}, 201, &tpl))
	claim := func(user int, req string) int {
		err := do("POST", fmt.Sprintf("/v1/templates/%d/claims", tpl.ID), map[string]any{"user_id": user, "request_id": req}, 201, nil)
		var se *apiclient.StatusError
		switch {
		case err == nil:
			return 201
		case errors.As(err, &se):
			return se.Status
		default:
			t.Fatal(err)
			return 0
		}
	}
	if got := claim(1, "r1"); got != 201 {
		t.Fatalf("first claim: %d, want 201", got)
	}
	i := 0
	enginetest.Eventually(t, "a claim refused 429 by the per-user limit", 30*time.Second, func() bool {
		i++
		return claim(2, fmt.Sprint("r2-", i)) == http.StatusTooManyRequests
	})
	// An operator's block, and a claim it refuses.
	must(do("PUT", "/v1/admin/blocks/users/9", map[string]any{"for_seconds": 600, "reason": "monitoring test"}, 200, nil))
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
