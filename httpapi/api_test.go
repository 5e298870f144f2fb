package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"couponpush/subscription"
	"couponpush/template"
)

const jsonCT = "application/json"

var msTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

const validTemplate = `{"name":"Singles Day","type":"percent","value":15,"threshold_cents":9900,"stock":500,
"per_user_limit":2,"grab_start":"2026-11-23T18:00:00+08:00","grab_end":"2026-11-23T12:00:00.5Z","valid_days":30}`

func TestTemplatesAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	id := f.tpl.ID
	big := `{"name":"` + strings.Repeat("x", 5000) + `"}`

	tests := []struct {
		name       string
		method     string
		path       string
		ct         string
		body       string
		wantStatus int
		wantCode   string // error.code; "" for success
		wantField  string // error.fields[0].field
		wantRows   int    // templates rows added
		check      func(t *testing.T, r response)
	}{
		{name: "create", method: "POST", path: "/v1/templates", ct: jsonCT, body: validTemplate, wantStatus: 201, wantRows: 1,
			check: func(t *testing.T, r response) {
				if r.body["id"].(float64) <= 0 || r.body["remaining"].(float64) != 500 || r.body["per_user_limit"].(float64) != 2 {
					t.Errorf("body %s", r.raw)
				}
				if r.body["grab_start"] != "2026-11-23T10:00:00.000Z" || r.body["grab_end"] != "2026-11-23T12:00:00.500Z" {
					t.Errorf("times not UTC with 3 fractional digits: %s", r.raw)
				}
				if _, ok := r.body["valid_until"]; ok {
					t.Errorf("valid_until present with valid_days: %s", r.raw)
				}
				if !strings.HasPrefix(r.header.Get("Location"), "/v1/templates/") {
					t.Errorf("Location %q", r.header.Get("Location"))
				}
			}},
		{name: "create with charset and default per-user limit", method: "POST", path: "/v1/templates", ct: "application/json; charset=utf-8",
			body:       `{"name":"n","type":"fixed","value":100,"stock":1,"grab_start":"2026-11-23T10:00:00Z","grab_end":"2026-11-23T11:00:00Z","valid_until":"2026-12-01T00:00:00Z"}`,
			wantStatus: 201, wantRows: 1, check: func(t *testing.T, r response) {
				if r.body["per_user_limit"].(float64) != 1 || r.body["valid_until"] != "2026-12-01T00:00:00.000Z" {
					t.Errorf("body %s", r.raw)
				}
			}},
		{name: "malformed JSON", method: "POST", path: "/v1/templates", ct: jsonCT, body: `{"name":`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "trailing data", method: "POST", path: "/v1/templates", ct: jsonCT, body: validTemplate + `{}`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "unknown field", method: "POST", path: "/v1/templates", ct: jsonCT, body: strings.Replace(validTemplate, `"stock"`, `"stonk":1,"stock"`, 1), wantStatus: 400, wantCode: "invalid_json"},
		{name: "not an object", method: "POST", path: "/v1/templates", ct: jsonCT, body: `[1]`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "null", method: "POST", path: "/v1/templates", ct: jsonCT, body: `null`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "empty body", method: "POST", path: "/v1/templates", ct: jsonCT, wantStatus: 400, wantCode: "invalid_json"},
		{name: "value of the wrong type", method: "POST", path: "/v1/templates", ct: jsonCT, body: strings.Replace(validTemplate, `"value":15`, `"value":"15"`, 1), wantStatus: 400, wantCode: "invalid_argument", wantField: "value"},
		{name: "fractional stock", method: "POST", path: "/v1/templates", ct: jsonCT, body: strings.Replace(validTemplate, `"stock":500`, `"stock":1.5`, 1), wantStatus: 400, wantCode: "invalid_argument", wantField: "stock"},
		{name: "bad time", method: "POST", path: "/v1/templates", ct: jsonCT, body: strings.Replace(validTemplate, `2026-11-23T18:00:00+08:00`, `2026-11-23 18:00`, 1), wantStatus: 400, wantCode: "invalid_argument", wantField: "grab_start"},
		{name: "percent out of range", method: "POST", path: "/v1/templates", ct: jsonCT, body: strings.Replace(validTemplate, `"value":15`, `"value":100`, 1), wantStatus: 400, wantCode: "invalid_argument", wantField: "value"},
		{name: "grab_end before grab_start", method: "POST", path: "/v1/templates", ct: jsonCT, body: strings.Replace(validTemplate, `12:00:00.5Z`, `09:00:00Z`, 1), wantStatus: 400, wantCode: "invalid_argument", wantField: "grab_end"},
		{name: "missing fields", method: "POST", path: "/v1/templates", ct: jsonCT, body: `{}`, wantStatus: 400, wantCode: "invalid_argument", wantField: "name"},
		{name: "too large", method: "POST", path: "/v1/templates", ct: jsonCT, body: big, wantStatus: 413, wantCode: "body_too_large"},
		{name: "not JSON", method: "POST", path: "/v1/templates", ct: "text/plain", body: validTemplate, wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "get", method: "GET", path: fmt.Sprintf("/v1/templates/%d", id), wantStatus: 200, check: func(t *testing.T, r response) {
			if r.body["remaining"].(float64) != 100 || r.body["issued"].(float64) != 0 || r.body["name"] != "drop" {
				t.Errorf("body %s", r.raw)
			}
			for _, k := range []string{"grab_start", "grab_end", "created_at", "updated_at"} {
				if s, _ := r.body[k].(string); !msTime.MatchString(s) {
					t.Errorf("%s = %q, want RFC 3339 UTC with milliseconds", k, s)
				}
			}
		}},
		{name: "get unknown", method: "GET", path: "/v1/templates/999999999", wantStatus: 404, wantCode: "template_not_found"},
		{name: "get non-numeric id", method: "GET", path: "/v1/templates/abc", wantStatus: 400, wantCode: "invalid_argument", wantField: "template_id"},
		{name: "get zero id", method: "GET", path: "/v1/templates/0", wantStatus: 400, wantCode: "invalid_argument", wantField: "template_id"},
		{name: "get negative id", method: "GET", path: "/v1/templates/-4", wantStatus: 400, wantCode: "invalid_argument", wantField: "template_id"},
		{name: "get overflowing id", method: "GET", path: "/v1/templates/9223372036854775808", wantStatus: 400, wantCode: "invalid_argument", wantField: "template_id"},
		{name: "rename", method: "PATCH", path: fmt.Sprintf("/v1/templates/%d", id), ct: jsonCT, body: `{"name":"renamed"}`, wantStatus: 200,
			check: func(t *testing.T, r response) {
				if r.body["name"] != "renamed" || r.body["version"].(float64) != 2 {
					t.Errorf("body %s", r.raw)
				}
			}},
		{name: "patch unknown field", method: "PATCH", path: fmt.Sprintf("/v1/templates/%d", id), ct: jsonCT, body: `{"stock":5}`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "patch bad window", method: "PATCH", path: fmt.Sprintf("/v1/templates/%d", id), ct: jsonCT, body: `{"grab_end":"2026-11-23T09:00:00Z"}`, wantStatus: 400, wantCode: "invalid_argument", wantField: "grab_end"},
		{name: "patch unknown template", method: "PATCH", path: "/v1/templates/999999999", ct: jsonCT, body: `{"name":"x"}`, wantStatus: 404, wantCode: "template_not_found"},
		{name: "wrong method", method: "DELETE", path: fmt.Sprintf("/v1/templates/%d", id), wantStatus: 405, wantCode: "method_not_allowed", check: func(t *testing.T, r response) {
			if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "PATCH") {
				t.Errorf("Allow = %q", allow)
			}
		}},
		{name: "unknown route", method: "GET", path: "/v1/nope", wantStatus: 404, wantCode: "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.count(t, "templates")
			r := f.do(t, tt.method, tt.path, tt.ct, tt.body)
			if r.status != tt.wantStatus || r.code() != tt.wantCode {
				t.Fatalf("%s %s = %d %s, want %d %q", tt.method, tt.path, r.status, r.raw, tt.wantStatus, tt.wantCode)
			}
			if tt.wantField != "" {
				e := r.body["error"].(map[string]any)
				fields, _ := e["fields"].([]any)
				if len(fields) == 0 || fields[0].(map[string]any)["field"] != tt.wantField ||
					!strings.Contains(e["message"].(string), tt.wantField) {
					t.Fatalf("error %s does not name field %s", r.raw, tt.wantField)
				}
			}
			if got := f.count(t, "templates") - before; got != tt.wantRows {
				t.Fatalf("templates rows added = %d, want %d", got, tt.wantRows)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestPatchGrabStartWithSubscribers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	path := fmt.Sprintf("/v1/templates/%d", f.tpl.ID)
	if r := f.do(t, "PUT", fmt.Sprintf("/v1/subscriptions/1/%d", f.tpl.ID), "", ""); r.status != 201 {
		t.Fatalf("subscribe: %d %s", r.status, r.raw)
	}
	r := f.do(t, "PATCH", path, jsonCT, `{"grab_start":"2026-11-23T10:30:00Z","name":"moved"}`)
	if r.status != 409 || r.code() != "has_subscribers" {
		t.Fatalf("PATCH = %d %s, want 409 has_subscribers", r.status, r.raw)
	}
	got, err := f.store.Get(context.Background(), f.tpl.ID)
	if err != nil || got != f.tpl {
		t.Fatalf("a refused PATCH changed the template: %+v %v", got, err)
	}
}

func TestSubscriptionsAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	tpl := f.tpl.ID
	days := 1
	soon, err := f.store.Create(ctx, template.Draft{Name: "soon", Type: template.Fixed, Value: 1, Stock: 1,
		GrabStart: base.Add(30 * time.Second), GrabEnd: base.Add(time.Hour), ValidDays: &days})
	if err != nil {
		t.Fatal(err)
	}
	later, err := f.store.Create(ctx, template.Draft{Name: "later", Type: template.Fixed, Value: 1, Stock: 1,
		GrabStart: grabStart.Add(time.Hour), GrabEnd: grabStart.Add(2 * time.Hour), ValidDays: &days})
	if err != nil {
		t.Fatal(err)
	}
	sub := func(user, template int64) string { return fmt.Sprintf("/v1/subscriptions/%d/%d", user, template) }
	listed := func(t *testing.T, r response) (tids []float64) {
		t.Helper()
		list, _ := r.body["subscriptions"].([]any)
		for _, s := range list {
			tids = append(tids, s.(map[string]any)["template_id"].(float64))
		}
		return tids
	}
	setup := map[string]func(t *testing.T){
		"two templates": func(t *testing.T) {
			mustStatus(t, f.do(t, "PUT", sub(66, tpl), "", ""), 201)
			mustStatus(t, f.do(t, "PUT", sub(66, later.ID), "", ""), 201)
		},
		"pending": func(t *testing.T) { mustStatus(t, f.do(t, "PUT", sub(2, tpl), "", ""), 201) },
		"cancelled": func(t *testing.T) {
			mustStatus(t, f.do(t, "PUT", sub(3, tpl), "", ""), 201)
			mustStatus(t, f.do(t, "DELETE", sub(3, tpl), "", ""), 204)
		},
		"cancelled twice": func(t *testing.T) {
			mustStatus(t, f.do(t, "PUT", sub(9, tpl), "", ""), 201)
			mustStatus(t, f.do(t, "DELETE", sub(9, tpl), "", ""), 204)
		},
		"sent": func(t *testing.T) {
			mustStatus(t, f.do(t, "PUT", sub(4, tpl), "", ""), 201)
			if err := f.subs.MarkSent(ctx, []subscription.Sent{{UserID: 4, TemplateID: tpl, PushID: "p-4", SentAt: grabStart.Add(-time.Minute)}}); err != nil {
				t.Fatal(err)
			}
		},
		"in flight": func(t *testing.T) { mustStatus(t, f.do(t, "PUT", sub(5, tpl), "", ""), 201); f.idx.setInFlight(5, tpl) },
	}

	done := map[string]bool{} // each setup runs once; cases run in order
	tests := []struct {
		name       string
		setup      string
		method     string
		path       string
		ct, body   string
		wantStatus int
		wantCode   string
		wantField  string
		wantRows   int // subscriptions rows added
		check      func(t *testing.T, r response)
	}{
		{name: "subscribe", method: "PUT", path: sub(1, tpl), wantStatus: 201, wantRows: 1, check: func(t *testing.T, r response) {
			if r.body["user_id"].(float64) != 1 || r.body["template_id"].(float64) != float64(tpl) ||
				r.body["status"] != "pending" || r.body["push_at"] != "2026-11-23T09:59:00.000Z" {
				t.Errorf("body %s", r.raw)
			}
		}},
		{name: "subscribe again", setup: "pending", method: "PUT", path: sub(2, tpl), wantStatus: 200},
		{name: "subscribe with a lead", method: "PUT", path: sub(6, tpl), ct: jsonCT, body: `{"lead_seconds":600}`, wantStatus: 201, wantRows: 1,
			check: func(t *testing.T, r response) {
				if r.body["push_at"] != "2026-11-23T09:50:00.000Z" {
					t.Errorf("push_at %v", r.body["push_at"])
				}
			}},
		{name: "subscribe with an empty object", method: "PUT", path: sub(7, tpl), ct: jsonCT, body: `{}`, wantStatus: 201, wantRows: 1},
		{name: "reactivate", setup: "cancelled", method: "PUT", path: sub(3, tpl), wantStatus: 201},
		{name: "subscribe when sent shows it", setup: "sent", method: "PUT", path: sub(4, tpl), wantStatus: 200, check: func(t *testing.T, r response) {
			if r.body["status"] != "sent" || r.body["push_id"] != "p-4" {
				t.Errorf("body %s", r.raw)
			}
		}},
		{name: "unknown template", method: "PUT", path: sub(1, 999999999), wantStatus: 404, wantCode: "template_not_found"},
		{name: "too late", method: "PUT", path: sub(1, soon.ID), wantStatus: 409, wantCode: "too_late"},
		{name: "lead 0", method: "PUT", path: sub(8, tpl), ct: jsonCT, body: `{"lead_seconds":0}`, wantStatus: 400, wantCode: "invalid_argument", wantField: "lead_seconds"},
		{name: "lead above max", method: "PUT", path: sub(8, tpl), ct: jsonCT, body: `{"lead_seconds":604801}`, wantStatus: 400, wantCode: "invalid_argument", wantField: "lead_seconds"},
		{name: "lead overflowing", method: "PUT", path: sub(8, tpl), ct: jsonCT, body: `{"lead_seconds":9223372036854775807}`, wantStatus: 400, wantCode: "invalid_argument", wantField: "lead_seconds"},
		{name: "lead as text", method: "PUT", path: sub(8, tpl), ct: jsonCT, body: `{"lead_seconds":"60"}`, wantStatus: 400, wantCode: "invalid_argument", wantField: "lead_seconds"},
		{name: "malformed body", method: "PUT", path: sub(8, tpl), ct: jsonCT, body: `{"lead_seconds":`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "unknown body field", method: "PUT", path: sub(8, tpl), ct: jsonCT, body: `{"lead":60}`, wantStatus: 400, wantCode: "invalid_json"},
		{name: "body not JSON", method: "PUT", path: sub(8, tpl), ct: "application/x-www-form-urlencoded", body: `lead_seconds=60`, wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "body too large", method: "PUT", path: sub(8, tpl), ct: jsonCT, body: `{"lead_seconds":60` + strings.Repeat(" ", 5000) + `}`, wantStatus: 413, wantCode: "body_too_large"},
		{name: "bad user id", method: "PUT", path: fmt.Sprintf("/v1/subscriptions/x/%d", tpl), wantStatus: 400, wantCode: "invalid_argument", wantField: "user_id"},
		{name: "zero template id", method: "PUT", path: "/v1/subscriptions/1/0", wantStatus: 400, wantCode: "invalid_argument", wantField: "template_id"},
		{name: "overflowing user id", method: "DELETE", path: fmt.Sprintf("/v1/subscriptions/99999999999999999999/%d", tpl), wantStatus: 400, wantCode: "invalid_argument", wantField: "user_id"},
		{name: "cancel", setup: "pending", method: "DELETE", path: sub(2, tpl), wantStatus: 204, check: func(t *testing.T, r response) {
			if len(r.raw) != 0 {
				t.Errorf("204 with a body: %q", r.raw)
			}
		}},
		{name: "cancel a cancelled one", setup: "cancelled twice", method: "DELETE", path: sub(9, tpl), wantStatus: 204, check: func(t *testing.T, r response) {
			if list := f.do(t, "GET", "/v1/subscriptions/9", "", ""); !strings.Contains(string(list.raw), `"status":"cancelled"`) {
				t.Errorf("after a second DELETE: %s", list.raw)
			}
		}},
		{name: "cancel none", method: "DELETE", path: sub(77, tpl), wantStatus: 404, wantCode: "subscription_not_found"},
		{name: "cancel sent", setup: "sent", method: "DELETE", path: sub(4, tpl), wantStatus: 409, wantCode: "already_sent"},
		{name: "cancel in flight", setup: "in flight", method: "DELETE", path: sub(5, tpl), wantStatus: 409, wantCode: "already_sent"},
		{name: "list", setup: "sent", method: "GET", path: "/v1/subscriptions/4", wantStatus: 200, check: func(t *testing.T, r response) {
			list, _ := r.body["subscriptions"].([]any)
			if len(list) != 1 {
				t.Fatalf("body %s", r.raw)
			}
			s := list[0].(map[string]any)
			if s["status"] != "sent" || !msTime.MatchString(s["sent_at"].(string)) {
				t.Errorf("body %s", r.raw)
			}
		}},
		{name: "list empty", method: "GET", path: "/v1/subscriptions/12345", wantStatus: 200, check: func(t *testing.T, r response) {
			if list, ok := r.body["subscriptions"].([]any); !ok || len(list) != 0 {
				t.Errorf("body %s, want an empty list", r.raw)
			}
		}},
		{name: "list bad user", method: "GET", path: "/v1/subscriptions/0", wantStatus: 400, wantCode: "invalid_argument", wantField: "user_id"},
		{name: "list whole", setup: "two templates", method: "GET", path: "/v1/subscriptions/66", wantStatus: 200, check: func(t *testing.T, r response) {
			if got := listed(t, r); !slices.Equal(got, []float64{float64(tpl), float64(later.ID)}) || r.body["next_after"] != nil {
				t.Errorf("body %s, want both templates and no next_after", r.raw)
			}
		}},
		{name: "list first page", setup: "two templates", method: "GET", path: "/v1/subscriptions/66?limit=1", wantStatus: 200, check: func(t *testing.T, r response) {
			if got := listed(t, r); !slices.Equal(got, []float64{float64(tpl)}) || r.body["next_after"] != float64(tpl) {
				t.Errorf("body %s, want the first template and next_after %d", r.raw, tpl)
			}
		}},
		{name: "list next page", setup: "two templates", method: "GET", path: fmt.Sprintf("/v1/subscriptions/66?limit=1&after=%d", tpl), wantStatus: 200, check: func(t *testing.T, r response) {
			if got := listed(t, r); !slices.Equal(got, []float64{float64(later.ID)}) {
				t.Errorf("body %s, want the second template", r.raw)
			}
		}},
		{name: "list past the end", setup: "two templates", method: "GET", path: fmt.Sprintf("/v1/subscriptions/66?after=%d", later.ID), wantStatus: 200, check: func(t *testing.T, r response) {
			if got := listed(t, r); len(got) != 0 || r.body["next_after"] != nil {
				t.Errorf("body %s, want an empty last page", r.raw)
			}
		}},
		{name: "list limit 0", method: "GET", path: "/v1/subscriptions/66?limit=0", wantStatus: 400, wantCode: "invalid_argument", wantField: "limit"},
		{name: "list limit too big", method: "GET", path: "/v1/subscriptions/66?limit=1001", wantStatus: 400, wantCode: "invalid_argument", wantField: "limit"},
		{name: "list limit twice", method: "GET", path: "/v1/subscriptions/66?limit=1&limit=2", wantStatus: 400, wantCode: "invalid_argument", wantField: "limit"},
		{name: "list limit not a number", method: "GET", path: "/v1/subscriptions/66?limit=1e2", wantStatus: 400, wantCode: "invalid_argument", wantField: "limit"},
		{name: "list negative after", method: "GET", path: "/v1/subscriptions/66?after=-1", wantStatus: 400, wantCode: "invalid_argument", wantField: "after"},
		{name: "wrong method", method: "POST", path: sub(1, tpl), wantStatus: 405, wantCode: "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != "" && !done[tt.setup] {
				done[tt.setup] = true
				setup[tt.setup](t)
			}
			before := f.count(t, "subscriptions")
			var rowBefore string
			if tt.wantCode != "" {
				rowBefore = f.rowsDump(t)
			}
			r := f.do(t, tt.method, tt.path, tt.ct, tt.body)
			if r.status != tt.wantStatus || r.code() != tt.wantCode {
				t.Fatalf("%s %s = %d %s, want %d %q", tt.method, tt.path, r.status, r.raw, tt.wantStatus, tt.wantCode)
			}
			if tt.wantField != "" {
				e := r.body["error"].(map[string]any)
				if fields, _ := e["fields"].([]any); len(fields) == 0 || fields[0].(map[string]any)["field"] != tt.wantField {
					t.Fatalf("error %s does not name field %s", r.raw, tt.wantField)
				}
			}
			if got := f.count(t, "subscriptions") - before; got != tt.wantRows {
				t.Fatalf("subscriptions rows added = %d, want %d", got, tt.wantRows)
			}
			if tt.wantCode != "" && f.rowsDump(t) != rowBefore {
				t.Fatalf("a rejected request changed rows")
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

// rowsDump is every subscription row, to see that nothing changed.
func (f *fixture) rowsDump(t *testing.T) string {
	t.Helper()
	rows, err := f.db.Query("SELECT id, user_id, template_id, push_at, status, version, updated_at FROM subscriptions ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var (
			id, u, tp, v int64
			p, up        time.Time
			s            string
		)
		if err := rows.Scan(&id, &u, &tp, &p, &s, &v, &up); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&b, id, u, tp, p, s, v, up)
	}
	return b.String()
}

func mustStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d %s, want %d", r.status, r.raw, want)
	}
}

func TestIndexDownAnswers503AndARetryRepairs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	path := fmt.Sprintf("/v1/subscriptions/1/%d", f.tpl.ID)
	f.idx.setDown(true)
	r := f.do(t, "PUT", path, "", "")
	if r.status != 503 || r.code() != "unavailable" || strings.Contains(string(r.raw), "refused") {
		t.Fatalf("PUT with the index down = %d %s, want 503 unavailable without internals", r.status, r.raw)
	}
	f.idx.setDown(false)
	if r := f.do(t, "PUT", path, "", ""); r.status != 200 || r.body["status"] != "pending" {
		t.Fatalf("retry = %d %s, want 200 pending", r.status, r.raw)
	}
	if _, ok := f.idx.entries[[2]int64{1, f.tpl.ID}]; !ok {
		t.Fatal("the retry did not index the reminder")
	}
}

// failing services answer what a broken engine or a bug would.
type failingTemplates struct {
	Templates
	err   error
	panic bool
}

func (f failingTemplates) Get(context.Context, int64) (template.Template, error) {
	if f.panic {
		panic("boom: secret internals")
	}
	return template.Template{}, f.err
}

func TestOperationsAndFailures(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		observed []string
		started  []string
	)
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "up 1")
	})
	mysqlDown := errors.New("dial tcp 127.0.0.1:1: connection refused")
	f := newFixture(t, func(c *Config) {
		c.Ready = map[string]func(context.Context) error{
			"mysql": func(ctx context.Context) error { return nil },
			"redis": func(ctx context.Context) error { return nil },
		}
		c.Metrics = metrics
		c.Started = func(route string) {
			mu.Lock()
			defer mu.Unlock()
			if len(started) != len(observed) {
				t.Errorf("%s started while %q was being served", route, started[len(started)-1])
			}
			started = append(started, route)
		}
		c.Observe = func(route string, status int, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			if len(started) != len(observed)+1 || started[len(started)-1] != route {
				t.Errorf("%s observed, not started (started %q)", route, started)
			}
			observed = append(observed, fmt.Sprintf("%s %d", route, status))
		}
	})
	notReady := newFixture(t, func(c *Config) {
		c.Ready = map[string]func(context.Context) error{
			"mysql": func(ctx context.Context) error { return mysqlDown },
			"redis": func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, // hangs until the timeout
		}
		c.ReadyTimeout = 50 * time.Millisecond
	})
	broken := newFixture(t, func(c *Config) {
		c.Templates = failingTemplates{Templates: c.Templates, err: errors.New("table templates is corrupt: secret")}
	})
	panicky := newFixture(t, func(c *Config) { c.Templates = failingTemplates{Templates: c.Templates, panic: true} })
	down := newFixture(t, func(c *Config) {
		c.Templates = failingTemplates{Templates: c.Templates, err: fmt.Errorf("read: %w", context.DeadlineExceeded)}
	})

	tests := []struct {
		name       string
		f          *fixture
		method     string
		path       string
		wantStatus int
		wantCode   string
		check      func(t *testing.T, r response)
	}{
		{name: "healthz", f: f, method: "GET", path: "/healthz", wantStatus: 200},
		{name: "readyz", f: f, method: "GET", path: "/readyz", wantStatus: 200, check: func(t *testing.T, r response) {
			if r.body["status"] != "ready" {
				t.Errorf("body %s", r.raw)
			}
		}},
		{name: "readyz names what failed", f: notReady, method: "GET", path: "/readyz", wantStatus: 503, wantCode: "unavailable",
			check: func(t *testing.T, r response) {
				msg := r.body["error"].(map[string]any)["message"].(string)
				checks := r.body["checks"].(map[string]any)
				if !strings.Contains(msg, "mysql") || !strings.Contains(msg, "redis") || checks["mysql"] != "down" || strings.Contains(msg, "refused") {
					t.Errorf("body %s", r.raw)
				}
			}},
		{name: "metrics", f: f, method: "GET", path: "/metrics", wantStatus: 200, check: func(t *testing.T, r response) {
			if string(r.raw) != "up 1\n" {
				t.Errorf("body %q", r.raw)
			}
		}},
		{name: "metrics disabled", f: notReady, method: "GET", path: "/metrics", wantStatus: 404, wantCode: "not_found"},
		{name: "internal error hides its cause", f: broken, method: "GET", path: "/v1/templates/1", wantStatus: 500, wantCode: "internal",
			check: func(t *testing.T, r response) {
				if strings.Contains(string(r.raw), "secret") || strings.Contains(string(r.raw), "corrupt") {
					t.Errorf("internals leaked: %s", r.raw)
				}
			}},
		{name: "panic is a 500", f: panicky, method: "GET", path: "/v1/templates/1", wantStatus: 500, wantCode: "internal",
			check: func(t *testing.T, r response) {
				if strings.Contains(string(r.raw), "secret") {
					t.Errorf("internals leaked: %s", r.raw)
				}
			}},
		{name: "engine timeout is a 503", f: down, method: "GET", path: "/v1/templates/1", wantStatus: 503, wantCode: "unavailable"},
		{name: "unknown route", f: f, method: "GET", path: "/nope", wantStatus: 404, wantCode: "not_found"},
		{name: "wrong method on healthz", f: f, method: "POST", path: "/healthz", wantStatus: 405, wantCode: "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.f.do(t, tt.method, tt.path, "", "")
			if r.status != tt.wantStatus || r.code() != tt.wantCode {
				t.Fatalf("%s %s = %d %s, want %d %q", tt.method, tt.path, r.status, r.raw, tt.wantStatus, tt.wantCode)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"GET /healthz 200", "GET /readyz 200", "GET /metrics 200", "unmatched 404", "unmatched 405"}
	if strings.Join(observed, ",") != strings.Join(want, ",") {
		t.Fatalf("observed %q, want %q", observed, want)
	}
}
