package template

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

var (
	t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
)

func validDraft() Draft {
	return Draft{
		Name:      "Double Eleven 50 off",
		Type:      Fixed,
		Value:     5000,
		Stock:     1000,
		GrabStart: t0,
		GrabEnd:   t0.Add(time.Hour),
		ValidDays: ptr(7),
	}
}

func fieldsOf(err error) []string {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	for _, f := range ve.Fields {
		out = append(out, f.Field)
	}
	return out
}

func TestNew(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(d *Draft)
		wantFields []string // nil = valid
		check      func(t *testing.T, tm Template)
	}{
		{name: "valid fixed with valid_days", edit: func(*Draft) {}, check: func(t *testing.T, tm Template) {
			if tm.PerUserLimit != 1 || tm.Remaining != 1000 || tm.ValidDays != 7 || !tm.ValidUntil.IsZero() {
				t.Errorf("got %+v", tm)
			}
		}},
		{name: "valid percent with valid_until", edit: func(d *Draft) {
			d.Type, d.Value, d.ValidDays, d.ValidUntil = Percent, 15, nil, ptr(t0.Add(48*time.Hour))
		}},
		{name: "times normalized to UTC milliseconds", edit: func(d *Draft) {
			loc := time.FixedZone("X", 8*3600)
			d.GrabStart = t0.In(loc).Add(1234567 * time.Nanosecond)
		}, check: func(t *testing.T, tm Template) {
			if want := t0.Add(time.Millisecond); !tm.GrabStart.Equal(want) || tm.GrabStart.Location() != time.UTC {
				t.Errorf("GrabStart = %v, want %v UTC", tm.GrabStart, want)
			}
		}},
		{name: "name 128 characters", edit: func(d *Draft) { d.Name = strings.Repeat("é", 128) }},
		{name: "per_user_limit 100", edit: func(d *Draft) { d.PerUserLimit = ptr(100) }},
		{name: "stock 1e9", edit: func(d *Draft) { d.Stock = 1e9 }},
		{name: "empty name", edit: func(d *Draft) { d.Name = "" }, wantFields: []string{"name"}},
		{name: "blank name", edit: func(d *Draft) { d.Name = "   " }, wantFields: []string{"name"}},
		{name: "name 129 characters", edit: func(d *Draft) { d.Name = strings.Repeat("a", 129) }, wantFields: []string{"name"}},
		{name: "missing type", edit: func(d *Draft) { d.Type = "" }, wantFields: []string{"type"}},
		{name: "unknown type", edit: func(d *Draft) { d.Type = "bogo" }, wantFields: []string{"type"}},
		{name: "fixed value 0", edit: func(d *Draft) { d.Value = 0 }, wantFields: []string{"value"}},
		{name: "percent value 0", edit: func(d *Draft) { d.Type, d.Value = Percent, 0 }, wantFields: []string{"value"}},
		{name: "percent value 100", edit: func(d *Draft) { d.Type, d.Value = Percent, 100 }, wantFields: []string{"value"}},
		{name: "negative threshold", edit: func(d *Draft) { d.ThresholdCents = -1 }, wantFields: []string{"threshold_cents"}},
		{name: "stock 0", edit: func(d *Draft) { d.Stock = 0 }, wantFields: []string{"stock"}},
		{name: "stock above 1e9", edit: func(d *Draft) { d.Stock = 1e9 + 1 }, wantFields: []string{"stock"}},
		{name: "per_user_limit 0", edit: func(d *Draft) { d.PerUserLimit = ptr(0) }, wantFields: []string{"per_user_limit"}},
		{name: "per_user_limit 101", edit: func(d *Draft) { d.PerUserLimit = ptr(101) }, wantFields: []string{"per_user_limit"}},
		{name: "missing grab_start", edit: func(d *Draft) { d.GrabStart = time.Time{} }, wantFields: []string{"grab_start"}},
		{name: "grab_end equal to grab_start", edit: func(d *Draft) { d.GrabEnd = d.GrabStart }, wantFields: []string{"grab_end"}},
		{name: "grab_end before grab_start", edit: func(d *Draft) { d.GrabEnd = d.GrabStart.Add(-time.Second) }, wantFields: []string{"grab_end"}},
		{name: "grab_start out of range", edit: func(d *Draft) { d.GrabStart = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC) }, wantFields: []string{"grab_start"}},
		{name: "neither validity", edit: func(d *Draft) { d.ValidDays = nil }, wantFields: []string{"valid_days"}},
		{name: "both validities", edit: func(d *Draft) { d.ValidUntil = ptr(t0.Add(time.Hour)) }, wantFields: []string{"valid_until"}},
		{name: "valid_days 0", edit: func(d *Draft) { d.ValidDays = ptr(0) }, wantFields: []string{"valid_days"}},
		{name: "valid_days 3651", edit: func(d *Draft) { d.ValidDays = ptr(3651) }, wantFields: []string{"valid_days"}},
		{name: "valid_until at grab_start", edit: func(d *Draft) { d.ValidDays, d.ValidUntil = nil, ptr(t0) }, wantFields: []string{"valid_until"}},
		{name: "no priority is normal", edit: func(*Draft) {}, check: func(t *testing.T, tm Template) {
			if tm.Priority != PriorityNormal {
				t.Errorf("Priority = %q, want normal", tm.Priority)
			}
		}},
		{name: "priority high", edit: func(d *Draft) { d.Priority = ptr(PriorityHigh) }, check: func(t *testing.T, tm Template) {
			if tm.Priority != PriorityHigh {
				t.Errorf("Priority = %q, want high", tm.Priority)
			}
		}},
		{name: "priority normal", edit: func(d *Draft) { d.Priority = ptr(PriorityNormal) }, check: func(t *testing.T, tm Template) {
			if tm.Priority != PriorityNormal {
				t.Errorf("Priority = %q, want normal", tm.Priority)
			}
		}},
		{name: "priority low", edit: func(d *Draft) { d.Priority = ptr(PriorityLow) }, check: func(t *testing.T, tm Template) {
			if tm.Priority != PriorityLow {
				t.Errorf("Priority = %q, want low", tm.Priority)
			}
		}},
		{name: "unknown priority", edit: func(d *Draft) { d.Priority = ptr(Priority("urgent")) }, wantFields: []string{"priority"}},
		{name: "priority in upper case", edit: func(d *Draft) { d.Priority = ptr(Priority("HIGH")) }, wantFields: []string{"priority"}},
		{name: "empty priority given", edit: func(d *Draft) { d.Priority = ptr(Priority("")) }, wantFields: []string{"priority"}},
		{name: "several fields at once", edit: func(d *Draft) { d.Name, d.Stock = "", 0 }, wantFields: []string{"name", "stock"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := validDraft()
			tt.edit(&d)
			tm, err := New(d)
			if tt.wantFields == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if tt.check != nil {
					tt.check(t, tm)
				}
				return
			}
			if got := fieldsOf(err); !slices.Equal(got, tt.wantFields) {
				t.Fatalf("New error %v names fields %v, want %v", err, got, tt.wantFields)
			}
		})
	}
}

// TestPriorityError: an unknown priority's message names the allowed
// values and echoes what was given.
func TestPriorityError(t *testing.T) {
	d := validDraft()
	d.Priority = ptr(Priority("urgent"))
	_, err := New(d)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) != 1 {
		t.Fatalf("New error = %v, want one field error", err)
	}
	if got, want := ve.Fields[0].Message, `must be high, normal or low, got "urgent"`; got != want {
		t.Fatalf("message = %q, want %q", got, want)
	}
}
