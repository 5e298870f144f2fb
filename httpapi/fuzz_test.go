package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"couponpush/template"
)

func checkDecodeError(t *testing.T, e *apiError) {
	t.Helper()
	if e.status != http.StatusBadRequest || (e.code != "invalid_json" && e.code != "invalid_argument") || e.message == "" {
		t.Fatalf("decoder error %+v: want a 400 invalid_json or invalid_argument with a message", e)
	}
	if e.code == "invalid_argument" && (len(e.fields) == 0 || e.fields[0].Field == "") {
		t.Fatalf("invalid_argument %+v names no field", e)
	}
}

// FuzzDecodeTemplate: any body either decodes or is a 400 with a code, and
// whatever decodes is either a valid template or a validation error.
//
//	go test -run '^$' -fuzz FuzzDecodeTemplate -fuzztime 30s ./httpapi/
func FuzzDecodeTemplate(f *testing.F) {
	for _, seed := range []string{
		validTemplate,
		`{"name":"n","type":"fixed","value":1,"stock":1,"grab_start":"2026-11-23T10:00:00Z","grab_end":"2026-11-23T11:00:00Z","valid_until":"2026-12-01T00:00:00Z"}`,
		`{}`, `{"name":`, `[]`, `null`, ``, `{"value":"1"}`, `{"value":1e400}`, `{"grab_start":"yesterday"}`,
		strings.Replace(validTemplate, `"stock":500`, `"stock":500,"priority":"high"`, 1),
		strings.Replace(validTemplate, `"stock":500`, `"stock":500,"priority":"low"`, 1),
		`{"priority":"urgent"}`, `{"priority":""}`, `{"priority":1}`, `{"priority":null}`, `{"PRIORITY":"high"}`,
		`{"priority":"high","priority":"low"}`,
		`{"valid_days":null,"per_user_limit":-1}`, `{"name":"a"}{"name":"b"}`, `{"NAME":"x"}`, "{\"name\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, e := decodeTemplate(body)
		if e != nil {
			checkDecodeError(t, e)
			return
		}
		tm, err := template.New(d)
		var ve *template.ValidationError
		if err != nil {
			if !errors.As(err, &ve) || len(ve.Fields) == 0 {
				t.Fatalf("template.New error %v is not a *ValidationError with fields", err)
			}
			return
		}
		if !tm.Priority.Valid() || (d.Priority == nil && tm.Priority != template.PriorityNormal) {
			t.Fatalf("decoded priority %q from %q", tm.Priority, body)
		}
		if tm.Remaining != tm.Stock || !tm.GrabStart.Before(tm.GrabEnd) || (tm.ValidDays == 0) == tm.ValidUntil.IsZero() {
			t.Fatalf("decoded an inconsistent template %+v from %q", tm, body)
		}
	})
}

// FuzzDecodeTemplatePatch: any body either decodes or is a 400 with a
// code; a priority is decoded only from a priority key, and is left for
// Store.Update to check.
//
//	go test -run '^$' -fuzz FuzzDecodeTemplatePatch -fuzztime 30s ./httpapi/
func FuzzDecodeTemplatePatch(f *testing.F) {
	for _, seed := range []string{`{}`, `{"name":"x"}`, `{"priority":"high"}`, `{"priority":"urgent"}`, `{"priority":null}`,
		`{"priority":7}`, `{"grab_start":"2026-11-23T10:00:00Z","grab_end":"2026-11-23T11:00:00Z"}`, `{"grab_end":"soon"}`,
		`{"stock":5}`, `{"name":"a","name":"b"}`, `null`, ``, `{"Priority":"low"}`, `{"priorit\u0079":"low"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, e := decodeTemplatePatch(body)
		if e != nil {
			checkDecodeError(t, e)
			return
		}
		if p.Priority == nil {
			return
		}
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(body, &keys); err != nil || keys["priority"] == nil {
			t.Fatalf("decoded priority %q from %q, which has no priority key", *p.Priority, body)
		}
	})
}

// FuzzDecodeSubscribe: any body either decodes to no lead or a positive
// one, or is a 400 with a code.
//
//	go test -run '^$' -fuzz FuzzDecodeSubscribe -fuzztime 30s ./httpapi/
func FuzzDecodeSubscribe(f *testing.F) {
	for _, seed := range []string{``, ` `, `{}`, `{"lead_seconds":60}`, `{"lead_seconds":0}`, `{"lead_seconds":-5}`,
		`{"lead_seconds":1.5}`, `{"lead_seconds":"60"}`, `{"lead_seconds":9223372036854775807}`, `{"lead":1}`,
		`{"lead_seconds":60} x`, `null`, `[`, `{"lead_seconds":null}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		lead, e := decodeSubscribe(body)
		if e != nil {
			checkDecodeError(t, e)
			return
		}
		if lead != nil && *lead <= 0 {
			t.Fatalf("decoded a non-positive lead %v from %q", *lead, body)
		}
	})
}
