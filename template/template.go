package template

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound means no template has the given id.
	ErrNotFound = errors.New("template: not found")
	// ErrHasSubscribers means a change to grab_start was refused because the
	// template already has subscriptions; a new template moves a drop.
	ErrHasSubscribers = errors.New("template: has subscribers; grab_start cannot change")
)

// Type is how a coupon's value is read.
type Type string

// The coupon types.
const (
	Fixed   Type = "fixed"   // Value is an amount off, in cents
	Percent Type = "percent" // Value is a percentage off, 1-99
)

// Priority says which reminders go first when the cluster cannot emit
// everything that is due at once: higher priority, then earlier grab
// start. It is stored and answered; the scheduler does not use it yet.
type Priority string

// The priorities; a template without one is PriorityNormal.
const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
	PriorityLow    Priority = "low"
)

// Valid reports whether p is one of the priorities ("" is not).
func (p Priority) Valid() bool {
	switch p {
	case PriorityHigh, PriorityNormal, PriorityLow:
		return true
	}
	return false
}

// Limits on template fields.
const (
	MaxNameLen      = 128  // characters
	MaxStock        = 1e9  // coupons per template
	MaxPerUserLimit = 100  // coupons per user per template
	MaxValidDays    = 3650 // days a claimed coupon stays valid
	DefaultPerUser  = 1    // per_user_limit when none is given
	MaxSubStocks    = 64   // Redis sub-stock keys per template
	DefaultSubStock = 8    // substocks when none is given
	maxPercentValue = 99   // percent off, inclusive
	minPercentValue = 1    // percent off, inclusive
	minFixedValue   = 1    // cents off, inclusive
	maxFixedValue   = 1e12 // cents off; keeps sums far from overflow
	maxThreshold    = 1e12 // cents; keeps sums far from overflow
	storedPrecision = time.Millisecond
)

// Times outside this range cannot be stored in a MySQL DATETIME column
// without surprise; they are rejected as invalid input.
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// Template is a coupon template as stored. Times are UTC with millisecond
// precision.
type Template struct {
	ID             int64
	Name           string
	Type           Type
	Value          int64 // cents for Fixed, percent for Percent
	ThresholdCents int64 // minimum order in cents; 0 = none
	Stock          int64 // coupons that may ever be issued
	Issued         int64 // coupons issued so far
	Remaining      int64 // Stock - Issued
	PerUserLimit   int
	SubStocks      int       // Redis sub-stock keys the stock is split over
	Priority       Priority  // never ""; PriorityNormal unless given
	GrabStart      time.Time // when users may start claiming
	GrabEnd        time.Time // when claiming ends
	ValidUntil     time.Time // fixed expiry of claimed coupons; zero if ValidDays is used
	ValidDays      int       // days a claimed coupon stays valid; 0 if ValidUntil is used
	Version        int64     // bumped by every change
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Draft is the input for a new template. Zero values mean "not given".
type Draft struct {
	Name           string
	Type           Type
	Value          int64
	ThresholdCents int64
	Stock          int64
	PerUserLimit   *int      // nil = DefaultPerUser
	SubStocks      *int      // nil = DefaultSubStock
	Priority       *Priority // nil = PriorityNormal
	GrabStart      time.Time
	GrabEnd        time.Time
	ValidUntil     *time.Time // exactly one of ValidUntil and ValidDays
	ValidDays      *int
}

// Patch is a change to an existing template; nil fields are left alone.
// Priority may change at any time, subscribers or not: it orders emission
// only and moves no reminder's push time.
type Patch struct {
	Name      *string
	GrabStart *time.Time
	GrabEnd   *time.Time
	Priority  *Priority
}

// FieldError is one invalid field.
type FieldError struct {
	Field   string // the field's JSON name, such as "grab_end"
	Message string // what is wrong, for a person
}

// ValidationError lists every invalid field of a draft or patch. Callers
// turn it into a 400 with errors.As. The coupon package reports its own
// invalid input (request_id, order_id, status) with it too, so one type
// carries every field error to the HTTP layer.
type ValidationError struct {
	Fields []FieldError
}

// Error lists the fields and what is wrong with each.
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "template: invalid input: " + strings.Join(parts, "; ")
}

type checker struct{ fields []FieldError }

func (c *checker) fail(field, format string, args ...any) {
	c.fields = append(c.fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) err() error {
	if len(c.fields) == 0 {
		return nil
	}
	return &ValidationError{Fields: c.fields}
}

func (c *checker) name(name string) {
	n := utf8.RuneCountInString(name)
	switch {
	case strings.TrimSpace(name) == "":
		c.fail("name", "is required")
	case n > MaxNameLen:
		c.fail("name", "must be at most %d characters, got %d", MaxNameLen, n)
	case !utf8.ValidString(name):
		c.fail("name", "must be valid UTF-8")
	}
}

// priority checks a given priority.
func (c *checker) priority(p Priority) {
	if !p.Valid() {
		c.fail("priority", "must be high, normal or low, got %q", string(p))
	}
}

// time reports whether t is given and storable.
func (c *checker) time(field string, t time.Time) bool {
	switch {
	case t.IsZero():
		c.fail(field, "is required")
	case t.Before(minTime) || t.After(maxTime):
		c.fail(field, "must be between %s and %s", minTime.Format(time.RFC3339), maxTime.Format(time.RFC3339))
	default:
		return true
	}
	return false
}

// window checks grab_start < grab_end and valid_until > grab_start.
func (c *checker) window(start, end, validUntil time.Time) {
	okStart := c.time("grab_start", start)
	okEnd := c.time("grab_end", end)
	if okStart && okEnd && !start.Before(end) {
		c.fail("grab_end", "must be after grab_start")
	}
	if !validUntil.IsZero() && okStart && !validUntil.After(start) {
		c.fail("valid_until", "must be after grab_start")
	}
}

// norm is the stored form of a time: UTC, millisecond precision.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(storedPrecision)
}

// New validates d and returns the template it describes, not yet
// stored (ID 0). Times are normalized to UTC milliseconds. An invalid draft
// returns a *ValidationError naming every bad field.
func New(d Draft) (Template, error) {
	var c checker
	c.name(d.Name)
	switch d.Type {
	case Fixed:
		if d.Value < minFixedValue || d.Value > maxFixedValue {
			c.fail("value", "must be %d to %d cents for a fixed coupon, got %d", minFixedValue, int64(maxFixedValue), d.Value)
		}
	case Percent:
		if d.Value < minPercentValue || d.Value > maxPercentValue {
			c.fail("value", "must be %d to %d for a percent coupon, got %d", minPercentValue, maxPercentValue, d.Value)
		}
	case "":
		c.fail("type", "is required (fixed or percent)")
	default:
		c.fail("type", "must be fixed or percent, got %q", string(d.Type))
	}
	if d.ThresholdCents < 0 || d.ThresholdCents > maxThreshold {
		c.fail("threshold_cents", "must be 0 to %d, got %d", int64(maxThreshold), d.ThresholdCents)
	}
	if d.Stock < 1 || d.Stock > MaxStock {
		c.fail("stock", "must be 1 to %d, got %d", int64(MaxStock), d.Stock)
	}
	perUser := DefaultPerUser
	if d.PerUserLimit != nil {
		perUser = *d.PerUserLimit
		if perUser < 1 || perUser > MaxPerUserLimit {
			c.fail("per_user_limit", "must be 1 to %d, got %d", MaxPerUserLimit, perUser)
		}
	}
	subs := DefaultSubStock
	if d.SubStocks != nil {
		subs = *d.SubStocks
		if subs < 1 || subs > MaxSubStocks {
			c.fail("substocks", "must be 1 to %d, got %d", MaxSubStocks, subs)
		}
	}
	prio := PriorityNormal
	if d.Priority != nil {
		prio = *d.Priority
		c.priority(prio)
	}
	start, end := norm(d.GrabStart), norm(d.GrabEnd)
	var validUntil time.Time
	var validDays int
	switch {
	case d.ValidUntil != nil && d.ValidDays != nil:
		c.fail("valid_until", "give either valid_until or valid_days, not both")
	case d.ValidUntil == nil && d.ValidDays == nil:
		c.fail("valid_days", "give either valid_until or valid_days")
	case d.ValidUntil != nil:
		if vu := norm(*d.ValidUntil); c.time("valid_until", vu) {
			validUntil = vu
		}
	default:
		validDays = *d.ValidDays
		if validDays < 1 || validDays > MaxValidDays {
			c.fail("valid_days", "must be 1 to %d, got %d", MaxValidDays, validDays)
		}
	}
	c.window(start, end, validUntil)
	if err := c.err(); err != nil {
		return Template{}, err
	}
	return Template{
		Name:           d.Name,
		Type:           d.Type,
		Value:          d.Value,
		ThresholdCents: d.ThresholdCents,
		Stock:          d.Stock,
		Remaining:      d.Stock,
		PerUserLimit:   perUser,
		SubStocks:      subs,
		Priority:       prio,
		GrabStart:      start,
		GrabEnd:        end,
		ValidUntil:     validUntil,
		ValidDays:      validDays,
	}, nil
}

// apply returns t with p applied and validated, and whether grab_start
// changed.
func (t Template) apply(p Patch) (Template, bool, error) {
	var c checker
	if p.Name != nil {
		c.name(*p.Name)
		t.Name = *p.Name
	}
	if p.Priority != nil {
		c.priority(*p.Priority)
		t.Priority = *p.Priority
	}
	startChanged := false
	if p.GrabStart != nil {
		s := norm(*p.GrabStart)
		startChanged = !s.Equal(t.GrabStart)
		t.GrabStart = s
	}
	if p.GrabEnd != nil {
		t.GrabEnd = norm(*p.GrabEnd)
	}
	c.window(t.GrabStart, t.GrabEnd, t.ValidUntil)
	if err := c.err(); err != nil {
		return Template{}, false, err
	}
	return t, startChanged, nil
}
