package monitoring

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"couponpush/internal/enginetest"
)

const (
	rulesFile  = "prometheus/alerts.yml"
	configFile = "prometheus/prometheus.yml"
	testsDir   = "prometheus/tests"
	opsDoc     = "../docs/operations.md"
)

// severities are the values of a rule's severity label, for routing.
var severities = []string{"critical", "warning"}

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// unitTestFile is the part of a promtool test file the tests read.
type unitTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// readYAML decodes path into v; strict refuses keys v has no field for (a
// misspelt "annotation:" in the rules), for files v describes whole.
func readYAML(t *testing.T, path string, v any, strict bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(strict)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	var f ruleFile
	readYAML(t, rulesFile, &f, true)
	var rs []rule
	for _, g := range f.Groups {
		rs = append(rs, g.Rules...)
	}
	if len(rs) == 0 {
		t.Fatalf("%s holds no rule", rulesFile)
	}
	return rs
}

// promtool runs the promtool that `scripts/engines.sh install` built; the
// test fails if it is missing.
func promtool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(enginetest.Bin(t, "promtool"), args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestPromtoolCheckRules(t *testing.T) {
	if out, err := promtool(t, "check", "rules", "--lint=all", "--lint-fatal", rulesFile); err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", rulesFile, err, out)
	}
}

func TestPromtoolCheckConfig(t *testing.T) {
	// check config also checks the rule files the configuration loads.
	if out, err := promtool(t, "check", "config", "--lint=all", "--lint-fatal", configFile); err != nil {
		t.Fatalf("promtool check config %s: %v\n%s", configFile, err, out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testsDir, "*.test.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s: %v", testsDir, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			if out, err := promtool(t, "test", "rules", f); err != nil {
				t.Fatalf("promtool test rules %s: %v\n%s", f, err, out)
			}
		})
	}
}

// The checks above can fail: promtool refuses a broken rule and a test
// whose expectation the rules do not meet.
func TestPromtoolFailsOnBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"rule with a syntax error", []string{"check", "rules", "testdata/bad_rules.yml"}, "parse error"},
		{"test expecting an alert that does not fire", []string{"test", "rules", "testdata/wrong.test.yml"}, "CouponpushWorkerDown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := promtool(t, tc.args...)
			if err == nil {
				t.Fatalf("promtool %s succeeded, want a failure:\n%s", strings.Join(tc.args, " "), out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("promtool %s: output lacks %q:\n%s", strings.Join(tc.args, " "), tc.want, out)
			}
		})
	}
}

// runbookLink is the form of a rule's runbook: a section of operations.md.
var runbookLink = regexp.MustCompile(`^docs/operations\.md#([a-z0-9-]+)$`)

func TestRulesAnnotated(t *testing.T) {
	anchors := headingAnchors(t, opsDoc)
	seen := map[string]bool{}
	for _, r := range loadRules(t) {
		t.Run(r.Alert, func(t *testing.T) {
			if r.Alert == "" || r.Record != "" {
				t.Fatalf("rule %q/%q: this file holds alerting rules only", r.Alert, r.Record)
			}
			if seen[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if !strings.HasPrefix(r.Alert, "Couponpush") {
				t.Errorf("alert %s: name does not start with Couponpush", r.Alert)
			}
			if s := r.Labels["severity"]; !slices.Contains(severities, s) {
				t.Errorf("severity %q, want one of %q", s, severities)
			}
			for _, k := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[k]) == "" {
					t.Errorf("no %s annotation", k)
				}
			}
			if rb := r.Annotations["runbook"]; rb != "" {
				m := runbookLink.FindStringSubmatch(rb)
				if m == nil {
					t.Errorf("runbook %q is not docs/operations.md#section", rb)
				} else if !anchors[m[1]] {
					t.Errorf("runbook %q: operations.md has no section #%s", rb, m[1])
				}
			}
		})
	}
}

// Every rule has tests/<alert>.test.yml with a case where it fires and one
// where it does not, and every test file belongs to a rule.
func TestEveryRuleTested(t *testing.T) {
	rules := loadRules(t)
	var alerts []string
	for _, r := range rules {
		alerts = append(alerts, r.Alert)
	}
	for _, a := range alerts {
		t.Run(a, func(t *testing.T) {
			path := filepath.Join(testsDir, a+".test.yml")
			var f unitTestFile
			readYAML(t, path, &f, false)
			if !slices.Contains(f.RuleFiles, "../alerts.yml") {
				t.Errorf("%s: rule_files %q does not load ../alerts.yml", path, f.RuleFiles)
			}
			var firing, quiet int
			for _, tc := range f.Tests {
				for _, at := range tc.AlertRuleTest {
					if at.Alertname != a {
						t.Errorf("%s: test %q checks %s; a file tests its own rule", path, tc.Name, at.Alertname)
						continue
					}
					if len(at.ExpAlerts) > 0 {
						firing++
					} else {
						quiet++
					}
				}
			}
			if firing == 0 || quiet == 0 {
				t.Errorf("%s: %d firing and %d not-firing cases; want at least one of each", path, firing, quiet)
			}
		})
	}
	files, _ := filepath.Glob(filepath.Join(testsDir, "*.test.yml"))
	for _, f := range files {
		if a := strings.TrimSuffix(filepath.Base(f), ".test.yml"); !slices.Contains(alerts, a) {
			t.Errorf("%s tests no rule of %s", f, rulesFile)
		}
	}
}

// The dashboard's expressions are PromQL that Prometheus itself accepts:
// promtool checks them as recording rules of a scratch file.
func TestDashboardQueriesPromQL(t *testing.T) {
	qs := dashboardQueries(t, loadDashboard(t))
	var f ruleFile
	f.Groups = append(f.Groups, struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	}{Name: "dashboard"})
	for i, q := range qs {
		f.Groups[0].Rules = append(f.Groups[0].Rules, rule{
			Record: fmt.Sprintf("dashboard:query_%d", i),
			Expr:   Expand(q.expr),
			Labels: map[string]string{"where": q.where},
		})
	}
	b, err := yaml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := promtool(t, "check", "rules", path); err != nil {
		t.Fatalf("promtool rejects a dashboard expression: %v\n%s", err, out)
	}
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown file: lower case, punctuation dropped, spaces to hyphens.
func headingAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		anchors[anchor(strings.TrimLeft(line, "# "))] = true
	}
	return anchors
}

func anchor(heading string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			sb.WriteRune('-')
		case r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9'):
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

func TestAnchor(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"A stuck queue", "a-stuck-queue"},
		{"`scheduler-admin`", "scheduler-admin"},
		{"Metrics (`GET /metrics`)", "metrics-get-metrics"},
		{"A drop behind its grab start", "a-drop-behind-its-grab-start"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := anchor(tc.in); got != tc.want {
				t.Errorf("anchor(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
