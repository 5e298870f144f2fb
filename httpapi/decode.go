package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"couponpush/subscription"
	"couponpush/template"
)

// pathID parses a positive 64-bit id from the path value name.
func pathID(r *http.Request, name string) (int64, *apiError) {
	s := r.PathValue(name)
	if s == "" || len(s) > 19 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, invalidArgument(name, "must be a positive 64-bit integer")
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, invalidArgument(name, "must be a positive 64-bit integer")
	}
	return id, nil
}

// readBody returns the request body, or nil if none was sent. A body with
// a Content-Type other than JSON is refused (415), as is one over max (413).
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, *apiError) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return nil, &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			message: "the body must be application/json"}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
			message: fmt.Sprintf("the body exceeds %d bytes", max)}
	case err != nil:
		return nil, invalidJSON("could not read the body")
	}
	return b, nil
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// decodeObject decodes one JSON object into v (a pointer to a struct of
// plain fields), strictly: keys match the fields' JSON names exactly (no
// case folding), none is given twice, none is unknown, nothing follows
// the object. Syntax problems are invalid_json; a value of the wrong type
// is invalid_argument naming the field.
func decodeObject(body []byte, v any) *apiError {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return invalidJSON("the body is empty; a JSON object is required")
	}
	if trimmed[0] != '{' {
		return invalidJSON("the body must be a JSON object")
	}
	if e := checkKeys(trimmed, fieldNames(reflect.TypeOf(v).Elem())); e != nil {
		return e
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var (
			typeErr *json.UnmarshalTypeError
			synErr  *json.SyntaxError
		)
		switch {
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return invalidArgument(typeErr.Field, "must be a JSON "+jsonKind(typeErr.Type.Kind().String()))
		case errors.As(err, &synErr):
			return invalidJSON(fmt.Sprintf("malformed JSON at byte %d", synErr.Offset))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return invalidJSON("the JSON ends too soon")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return invalidJSON("unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return invalidJSON("malformed JSON")
		}
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		return invalidJSON("unexpected data after the JSON object")
	}
	return nil
}

// checkKeys reads the top-level keys of the object in body and refuses
// one given twice or one that is not exactly a name in fields.
// encoding/json alone would take "USER_ID" for user_id and let the last
// of two user_id keys win, so two parsers (a proxy's, a log's, ours)
// could read one body two ways. Syntax errors are left to the decoder,
// which reports them with their offset.
func checkKeys(body []byte, fields map[string]bool) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // the opening brace
		return nil
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, ok := tok.(string)
		if !ok {
			return nil
		}
		switch {
		case seen[key]:
			return invalidJSON(fmt.Sprintf("field %q is given twice", key))
		case !fields[key]:
			return invalidJSON(fmt.Sprintf("unknown field %q", key))
		}
		seen[key] = true
		if err := dec.Decode(&json.RawMessage{}); err != nil {
			return nil
		}
	}
	return nil
}

// fieldNames are the JSON names of struct type t's fields, cached.
func fieldNames(t reflect.Type) map[string]bool {
	if m, ok := fieldNameCache.Load(t); ok {
		return m.(map[string]bool)
	}
	m := map[string]bool{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case name == "":
			m[f.Name] = true
		default:
			m[name] = true
		}
	}
	fieldNameCache.Store(t, m)
	return m
}

var fieldNameCache sync.Map // reflect.Type → map[string]bool

func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"):
		return "integer"
	case goKind == "string":
		return "string"
	default:
		return goKind
	}
}

// pageQuery reads ?after=<template id>&limit=<n> of the subscription
// list; absent means from the first, subscription.MaxListLimit of them.
func pageQuery(r *http.Request) (subscription.Page, *apiError) {
	var p subscription.Page
	q := r.URL.Query()
	for _, f := range []struct {
		name string
		min  int64
		max  int64
		out  func(int64)
	}{
		{"after", 0, math.MaxInt64, func(v int64) { p.After = v }},
		{"limit", 1, subscription.MaxListLimit, func(v int64) { p.Limit = int(v) }},
	} {
		vs, ok := q[f.name]
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(vs[0], 10, 64)
		if len(vs) > 1 || err != nil || v < f.min || v > f.max || strings.TrimLeft(vs[0], "0123456789") != "" {
			return subscription.Page{}, invalidArgument(f.name, fmt.Sprintf("must be one integer from %d to %d", f.min, f.max))
		}
		f.out(v)
	}
	return p, nil
}

// parseTime parses an RFC 3339 field.
func parseTime(field string, s *string) (time.Time, *apiError) {
	if s == nil {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		return time.Time{}, invalidArgument(field, "must be an RFC 3339 time such as 2026-11-23T10:00:00.000Z")
	}
	return t, nil
}

type templateRequest struct {
	Name           string  `json:"name"`
	Type           string  `json:"type"`
	Value          int64   `json:"value"`
	ThresholdCents int64   `json:"threshold_cents"`
	Stock          int64   `json:"stock"`
	PerUserLimit   *int    `json:"per_user_limit"`
	SubStocks      *int    `json:"substocks"`
	Priority       *string `json:"priority"`
	GrabStart      *string `json:"grab_start"`
	GrabEnd        *string `json:"grab_end"`
	ValidUntil     *string `json:"valid_until"`
	ValidDays      *int    `json:"valid_days"`
}

// decodeTemplate decodes POST /v1/templates. Field values are checked by
// template.New; this checks only what JSON alone can say.
func decodeTemplate(body []byte) (template.Draft, *apiError) {
	var req templateRequest
	if e := decodeObject(body, &req); e != nil {
		return template.Draft{}, e
	}
	d := template.Draft{
		Name: req.Name, Type: template.Type(req.Type), Value: req.Value, ThresholdCents: req.ThresholdCents,
		Stock: req.Stock, PerUserLimit: req.PerUserLimit, SubStocks: req.SubStocks, ValidDays: req.ValidDays,
		Priority: priority(req.Priority),
	}
	var e *apiError
	if d.GrabStart, e = parseTime("grab_start", req.GrabStart); e != nil {
		return template.Draft{}, e
	}
	if d.GrabEnd, e = parseTime("grab_end", req.GrabEnd); e != nil {
		return template.Draft{}, e
	}
	if req.ValidUntil != nil {
		t, e := parseTime("valid_until", req.ValidUntil)
		if e != nil {
			return template.Draft{}, e
		}
		d.ValidUntil = &t
	}
	return d, nil
}

// priority is a request's priority for template.New or Patch to check;
// nil (absent or null) leaves the default or the stored one.
func priority(s *string) *template.Priority {
	if s == nil {
		return nil
	}
	p := template.Priority(*s)
	return &p
}

type templatePatchRequest struct {
	Name      *string `json:"name"`
	GrabStart *string `json:"grab_start"`
	GrabEnd   *string `json:"grab_end"`
	Priority  *string `json:"priority"`
}

// decodeTemplatePatch decodes PATCH /v1/templates/{id}.
func decodeTemplatePatch(body []byte) (template.Patch, *apiError) {
	var req templatePatchRequest
	if e := decodeObject(body, &req); e != nil {
		return template.Patch{}, e
	}
	p := template.Patch{Name: req.Name, Priority: priority(req.Priority)}
	for _, f := range []struct {
		name string
		in   *string
		out  **time.Time
	}{{"grab_start", req.GrabStart, &p.GrabStart}, {"grab_end", req.GrabEnd, &p.GrabEnd}} {
		if f.in == nil {
			continue
		}
		t, e := parseTime(f.name, f.in)
		if e != nil {
			return template.Patch{}, e
		}
		*f.out = &t
	}
	return p, nil
}

type subscribeRequest struct {
	LeadSeconds *int64 `json:"lead_seconds"`
}

// maxLeadSeconds keeps lead_seconds * time.Second from overflowing.
const maxLeadSeconds = math.MaxInt64 / int64(time.Second)

// decodeSubscribe decodes the optional body of PUT /v1/subscriptions/...;
// no body (or no lead_seconds) means the default lead (nil).
func decodeSubscribe(body []byte) (*time.Duration, *apiError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	var req subscribeRequest
	if e := decodeObject(body, &req); e != nil {
		return nil, e
	}
	if req.LeadSeconds == nil {
		return nil, nil
	}
	if *req.LeadSeconds <= 0 || *req.LeadSeconds > maxLeadSeconds {
		return nil, invalidArgument("lead_seconds", "must be a positive number of seconds")
	}
	d := time.Duration(*req.LeadSeconds) * time.Second
	return &d, nil
}
