package httpapi

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestTemplatePriority: POST takes priority high, normal or low (none is
// normal) and every template answer carries it; a bad value is a 400 that
// names the field and writes nothing; PATCH changes it, subscribers or
// not.
func TestTemplatePriority(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	withPriority := func(v string) string {
		return strings.Replace(validTemplate, `"stock":500`, `"stock":500,"priority":`+v, 1)
	}
	for _, tc := range []struct {
		name, body string
		want       string
	}{
		{"high", withPriority(`"high"`), "high"},
		{"normal", withPriority(`"normal"`), "normal"},
		{"low", withPriority(`"low"`), "low"},
		{"none", validTemplate, "normal"},
		{"null", withPriority(`null`), "normal"},
	} {
		t.Run("create "+tc.name, func(t *testing.T) {
			r := f.do(t, "POST", "/v1/templates", jsonCT, tc.body)
			if r.status != 201 || r.body["priority"] != tc.want {
				t.Fatalf("POST = %d %s, want 201 with priority %q", r.status, r.raw, tc.want)
			}
			g := f.do(t, "GET", r.header.Get("Location"), "", "")
			if g.status != 200 || g.body["priority"] != tc.want {
				t.Fatalf("GET = %d %s, want priority %q", g.status, g.raw, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, value, code string
	}{
		{"unknown", `"urgent"`, "invalid_argument"},
		{"upper case", `"HIGH"`, "invalid_argument"},
		{"empty", `""`, "invalid_argument"},
		{"number", `1`, "invalid_argument"},
		{"object", `{"level":"high"}`, "invalid_argument"},
	} {
		t.Run("create with "+tc.name+" priority", func(t *testing.T) {
			before := f.count(t, "templates")
			r := f.do(t, "POST", "/v1/templates", jsonCT, withPriority(tc.value))
			if r.status != 400 || r.code() != tc.code || !namesField(r, "priority") {
				t.Fatalf("POST = %d %s, want 400 %s naming priority", r.status, r.raw, tc.code)
			}
			if n := f.count(t, "templates") - before; n != 0 {
				t.Fatalf("a refused POST wrote %d templates", n)
			}
		})
	}

	path := fmt.Sprintf("/v1/templates/%d", f.tpl.ID)
	if r := f.do(t, "PUT", fmt.Sprintf("/v1/subscriptions/1/%d", f.tpl.ID), "", ""); r.status != 201 {
		t.Fatalf("subscribe: %d %s", r.status, r.raw)
	}
	t.Run("patch bad priority changes nothing", func(t *testing.T) {
		r := f.do(t, "PATCH", path, jsonCT, `{"name":"renamed","priority":"urgent"}`)
		if r.status != 400 || r.code() != "invalid_argument" || !namesField(r, "priority") {
			t.Fatalf("PATCH = %d %s, want 400 invalid_argument naming priority", r.status, r.raw)
		}
		if got, err := f.store.Get(context.Background(), f.tpl.ID); err != nil || got != f.tpl {
			t.Fatalf("a refused PATCH changed the template: %+v %v", got, err)
		}
	})
	t.Run("patch priority with subscribers", func(t *testing.T) {
		r := f.do(t, "PATCH", path, jsonCT, `{"priority":"low"}`)
		if r.status != 200 || r.body["priority"] != "low" || r.body["version"].(float64) != float64(f.tpl.Version+1) {
			t.Fatalf("PATCH = %d %s, want 200 with priority low, version up", r.status, r.raw)
		}
		if g := f.do(t, "GET", path, "", ""); g.body["priority"] != "low" {
			t.Fatalf("GET after PATCH = %s, want priority low", g.raw)
		}
	})
	t.Run("patch without priority keeps it", func(t *testing.T) {
		r := f.do(t, "PATCH", path, jsonCT, `{"name":"renamed"}`)
		if r.status != 200 || r.body["priority"] != "low" || r.body["name"] != "renamed" {
			t.Fatalf("PATCH = %d %s, want the name changed and priority still low", r.status, r.raw)
		}
	})
}

// namesField reports whether error answer r lists field among its fields.
func namesField(r response, field string) bool {
	e, _ := r.body["error"].(map[string]any)
	fields, _ := e["fields"].([]any)
	for _, f := range fields {
		if m, _ := f.(map[string]any); m["field"] == field {
			return true
		}
	}
	return false
}
