package monitoring

import (
	"slices"
	"strings"
	"testing"
)

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		name, expr string
		want       []string
		err        string
	}{
		{"bare name", "up", []string{"up"}, ""},
		{"labels and strings are not names", `up{job="couponpush",instance=~"w.*"} == 0`, []string{"up"}, ""},
		{"functions, aggregations and grouping labels are not names",
			"max by (queue) (couponpush_queue_lag_seconds) > 30", []string{"couponpush_queue_lag_seconds"}, ""},
		{"histogram buckets keep their suffix",
			"histogram_quantile(0.99, sum by (le, route) (rate(couponpush_http_request_seconds_bucket[5m])))",
			[]string{"couponpush_http_request_seconds_bucket"}, ""},
		{"durations, offsets and numbers are not names",
			"increase(a_total[10m] offset 1h) / 1e3 + rate(b_total[1m:30s])", []string{"a_total", "b_total"}, ""},
		{"vector matching keywords are not names",
			"x / on (template) group_left (status) y and ignoring (instance) z unless w or v",
			[]string{"v", "w", "x", "y", "z"}, ""},
		{"a name used twice is listed once", "a - a offset 5m", []string{"a"}, ""},
		{"__name__ matcher", `{__name__="couponpush_dead_letters",queue="1"}`, []string{"couponpush_dead_letters"}, ""},
		{"time() and scalars", "time() - max(couponpush_scheduler_last_tick_timestamp_seconds)",
			[]string{"couponpush_scheduler_last_tick_timestamp_seconds"}, ""},
		{"grafana interval and template variables",
			`sum by (template) (rate(couponpush_template_due_total{template=~"$template"}[$__rate_interval]))`,
			[]string{"couponpush_template_due_total"}, ""},
		{"grafana braced variables", `rate(x_total{a=~"${template:regex}"}[${__interval}])`, []string{"x_total"}, ""},
		{"the forecast of the dashboard",
			`max by (template) (p > 0) / sum by (template) (rate(q_total[5m])) > on (template) (max by (template) (g) - time())`,
			[]string{"g", "p", "q_total"}, ""},
		{"selector without a name", `{job="couponpush"}`, nil, "names no metric"},
		{"regular expression on __name__", `{__name__=~"couponpush_.*"}`, nil, "names no metric"},
		{"syntax error", "sum(rate(x[5m])", nil, "parsing"},
		{"empty", "", nil, "parsing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MetricNames(tc.expr)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("MetricNames(%q) = %v, %v; want an error with %q", tc.expr, got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("MetricNames(%q): %v", tc.expr, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("MetricNames(%q) = %q, want %q", tc.expr, got, tc.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"rate(x[$__rate_interval])", "rate(x[5m])"},
		{"rate(x[${__interval}])", "rate(x[5m])"},
		{`x{t=~"$template"}`, `x{t=~".*"}`},
		{`x{t=~"${template:pipe}"}`, `x{t=~".*"}`},
		{"x", "x"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := Expand(tc.in); got != tc.want {
				t.Errorf("Expand(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzMetricNames: any input either fails with an error or yields
// non-empty names, sorted and unique; nothing panics.
func FuzzMetricNames(f *testing.F) {
	for _, s := range []string{"up", `up{job="x"} == 0`, "sum by (a) (rate(b_total[5m]))", `{__name__="n"}`,
		`rate(x{t=~"$template"}[$__rate_interval])`, "a / on (b) group_left c", "(", `"s"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		names, err := MetricNames(expr)
		if err != nil {
			return
		}
		if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Fatalf("MetricNames(%q) = %q: not sorted and unique", expr, names)
		}
		for _, n := range names {
			if n == "" {
				t.Fatalf("MetricNames(%q) gave an empty name", expr)
			}
		}
	})
}
