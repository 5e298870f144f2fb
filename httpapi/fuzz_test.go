package httpapi

import (
	"errors"
	"net/http"
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
		if tm.Remaining != tm.Stock || !tm.GrabStart.Before(tm.GrabEnd) || (tm.ValidDays == 0) == tm.ValidUntil.IsZero() {
			t.Fatalf("decoded an inconsistent template %+v from %q", tm, body)
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
