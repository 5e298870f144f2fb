package monitoring

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	sdk "github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

const dashboardFile = "grafana/couponpush.json"

// minSchemaVersion is the dashboard schema of Grafana 11.0; the file is
// written for Grafana 12 (41), and older Grafanas would migrate it.
const minSchemaVersion = 39

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    *gridPos       `json:"gridPos"`
	Targets    []target       `json:"targets"`
	Panels     []panel        `json:"panels"` // a collapsed row's panels
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gridPos struct{ X, Y, W, H int }

type target struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Datasource *datasourceRef `json:"datasource"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *datasourceRef  `json:"datasource"`
}

// query is one PromQL expression of the dashboard and where it is.
type query struct{ where, expr string }

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	if dec.More() {
		t.Fatalf("%s: data after the dashboard object", dashboardFile)
	}
	return d
}

// allPanels returns the panels in order, rows' nested panels included.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// labelValues matches a Grafana variable query label_values(metric, label).
var labelValues = regexp.MustCompile(`^label_values\(\s*(.+?)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)$`)

// dashboardQueries returns every PromQL expression of the dashboard: the
// panels' targets and the metric selectors of the query variables.
func dashboardQueries(t *testing.T, d dashboard) []query {
	t.Helper()
	var qs []query
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: query: %v", v.Name, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("variable %s: query %q is not label_values(metric, label)", v.Name, q.Query)
		}
		if v.Definition != q.Query {
			t.Errorf("variable %s: definition %q differs from its query %q", v.Name, v.Definition, q.Query)
		}
		qs = append(qs, query{"variable " + v.Name, m[1]})
	}
	return qs
}

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: want both", d.UID, d.Title)
	}
	if d.SchemaVersion < minSchemaVersion {
		t.Errorf("schemaVersion %d, want at least %d (Grafana 11)", d.SchemaVersion, minSchemaVersion)
	}

	t.Run("datasource variable", func(t *testing.T) {
		var found bool
		for _, v := range d.Templating.List {
			if v.Name == "datasource" {
				found = true
				if v.Type != "datasource" || string(v.Query) != `"prometheus"` {
					t.Errorf("variable datasource: type %q query %s, want type datasource, query \"prometheus\"", v.Type, v.Query)
				}
			} else if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
				t.Errorf("variable %s does not read the datasource variable: %+v", v.Name, v.Datasource)
			}
		}
		if !found {
			t.Error("no datasource variable")
		}
	})

	t.Run("panels", func(t *testing.T) {
		ids := map[int]string{}
		titles := map[string]int{}
		ps := allPanels(d.Panels)
		if len(ps) == 0 {
			t.Fatal("no panels")
		}
		for _, p := range ps {
			if p.ID <= 0 {
				t.Errorf("panel %q: id %d, want a positive id", p.Title, p.ID)
			} else if other, dup := ids[p.ID]; dup {
				t.Errorf("panel id %d used by %q and %q", p.ID, other, p.Title)
			}
			ids[p.ID] = p.Title
			if p.Title == "" {
				t.Errorf("panel %d has no title", p.ID)
			} else if other, dup := titles[p.Title]; dup {
				t.Errorf("panel title %q used by panels %d and %d", p.Title, other, p.ID)
			}
			titles[p.Title] = p.ID
			if g := p.GridPos; g == nil || g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("panel %d %q: gridPos %+v, want one within the 24 columns", p.ID, p.Title, g)
			}
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %d %q does not read the datasource variable: %+v", p.ID, p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %d %q has no query", p.ID, p.Title)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("panel %d %q: refId %q missing or repeated", p.ID, p.Title, tg.RefID)
				}
				refs[tg.RefID] = true
				if tg.Expr == "" {
					t.Errorf("panel %d %q target %s: no expr", p.ID, p.Title, tg.RefID)
				}
			}
		}
	})

	t.Run("queries name their metrics", func(t *testing.T) {
		for _, q := range dashboardQueries(t, d) {
			if names, err := MetricNames(q.expr); err != nil {
				t.Errorf("%s: %v", q.where, err)
			} else if len(names) == 0 {
				t.Errorf("%s: %q reads no metric", q.where, q.expr)
			}
		}
	})
}

// The dashboard fits Grafana's own schema (the Grafana Foundation SDK's
// strict decoding, with the schemas of the panel and query plugins): no
// unknown field, no required one missing, every value of its type.
func TestDashboardSchema(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	for _, tc := range []struct {
		name string
		edit func(map[string]any)
		ok   bool
	}{
		{"the dashboard", nil, true},
		{"a misspelt panel field", func(d map[string]any) {
			d["panels"].([]any)[1].(map[string]any)["titel"] = "x"
		}, false},
		{"a misspelt query field", func(d map[string]any) {
			p := d["panels"].([]any)[1].(map[string]any)
			p["targets"].([]any)[0].(map[string]any)["exprr"] = "up"
		}, false},
		{"no schemaVersion", func(d map[string]any) { delete(d, "schemaVersion") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := os.ReadFile(dashboardFile)
			if err != nil {
				t.Fatal(err)
			}
			if tc.edit != nil {
				var m map[string]any
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatal(err)
				}
				tc.edit(m)
				if b, err = json.Marshal(m); err != nil {
					t.Fatal(err)
				}
			}
			// The v1 model (schemaVersion) is what Grafana imports and
			// exports as dashboard JSON; the SDK marks it deprecated in
			// favour of the v2 resource of Grafana 12's dynamic dashboards.
			//lint:ignore SA1019 the file is a v1 dashboard JSON on purpose
			var d sdk.Dashboard
			err = d.UnmarshalJSONStrict(b)
			// The SDK returns an empty cog.BuildErrors for no error.
			var be cog.BuildErrors
			if errors.As(err, &be) && len(be) == 0 {
				err = nil
			}
			if tc.ok && err != nil {
				t.Fatalf("%s does not fit Grafana's dashboard schema:\n%v", dashboardFile, err)
			}
			if !tc.ok && err == nil {
				t.Fatal("the strict decoding accepted a broken dashboard")
			}
		})
	}
}
