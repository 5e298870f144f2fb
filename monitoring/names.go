package monitoring

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/VictoriaMetrics/metricsql"
)

// grafanaVar matches the Grafana variables a dashboard expression may hold
// outside a string: $name, ${name} and ${name:format}.
var grafanaVar = regexp.MustCompile(`\$(\{[A-Za-z_][A-Za-z0-9_]*(:[A-Za-z]+)?\}|[A-Za-z_][A-Za-z0-9_]*)`)

// grafanaDurations are the interval variables Grafana replaces by a
// duration before it sends a query; Expand replaces them by one too.
var grafanaDurations = []string{"__rate_interval", "__interval", "__range"}

// Expand returns expr with the Grafana variables replaced as Grafana would
// before sending it: the interval variables ($__rate_interval, $__interval,
// $__range) by 5m, and any other variable (a template variable such as
// $template, which belongs in a label matcher's string) by ".*", what its
// "All" value becomes.
func Expand(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(v string) string {
		name := strings.Trim(strings.TrimPrefix(v, "$"), "{}")
		name, _, _ = strings.Cut(name, ":")
		if slices.Contains(grafanaDurations, name) {
			return "5m"
		}
		return ".*"
	})
}

// MetricNames returns the metric names an expression selects, sorted and
// without duplicates, from its parse tree: functions, keywords, label names
// and values, strings and durations are not names. Grafana variables are
// expanded first (see Expand). A selector without a plain metric name (only
// label matchers, or a regular expression on __name__) is an error: the
// dashboard and the rules name every metric they read.
func MetricNames(expr string) ([]string, error) {
	expanded := Expand(expr)
	e, err := metricsql.Parse(expanded)
	if err != nil {
		return nil, fmt.Errorf("monitoring: parsing %q: %w", expanded, err)
	}
	var names []string
	metricsql.VisitAll(e, func(n metricsql.Expr) {
		if err != nil {
			return
		}
		me, ok := n.(*metricsql.MetricExpr)
		if !ok {
			return
		}
		for _, group := range me.LabelFilterss {
			name := ""
			for _, f := range group {
				if f.Label == "__name__" && !f.IsRegexp && !f.IsNegative {
					name = f.Value
				}
			}
			if name == "" {
				err = fmt.Errorf("monitoring: %q: selector %s names no metric", expr, me.AppendString(nil))
				return
			}
			names = append(names, name)
		}
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
