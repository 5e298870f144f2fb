package httpapi

import (
	"time"

	"couponpush/subscription"
	"couponpush/template"
)

// timeLayout is RFC 3339 with exactly three fractional digits; with UTC
// times the zone is written "Z".
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// jsonTime writes a time in timeLayout, UTC.
type jsonTime time.Time

// MarshalJSON writes t as "2006-01-02T15:04:05.000Z".
func (t jsonTime) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(timeLayout)+2)
	b = append(b, '"')
	b = time.Time(t).UTC().AppendFormat(b, timeLayout)
	return append(b, '"'), nil
}

func optTime(t time.Time) *jsonTime {
	if t.IsZero() {
		return nil
	}
	j := jsonTime(t)
	return &j
}

type templateJSON struct {
	ID             int64     `json:"id"`
	Name           string    `json:"name"`
	Type           string    `json:"type"`
	Value          int64     `json:"value"`
	ThresholdCents int64     `json:"threshold_cents"`
	Stock          int64     `json:"stock"`
	Issued         int64     `json:"issued"`
	Remaining      int64     `json:"remaining"`
	PerUserLimit   int       `json:"per_user_limit"`
	SubStocks      int       `json:"substocks"`
	Priority       string    `json:"priority"`
	GrabStart      jsonTime  `json:"grab_start"`
	GrabEnd        jsonTime  `json:"grab_end"`
	ValidUntil     *jsonTime `json:"valid_until,omitempty"`
	ValidDays      int       `json:"valid_days,omitempty"`
	Version        int64     `json:"version"`
	CreatedAt      jsonTime  `json:"created_at"`
	UpdatedAt      jsonTime  `json:"updated_at"`
}

func templateOut(t template.Template) templateJSON {
	return templateJSON{
		ID: t.ID, Name: t.Name, Type: string(t.Type), Value: t.Value, ThresholdCents: t.ThresholdCents,
		Stock: t.Stock, Issued: t.Issued, Remaining: t.Remaining, PerUserLimit: t.PerUserLimit,
		SubStocks: t.SubStocks, Priority: string(t.Priority), GrabStart: jsonTime(t.GrabStart), GrabEnd: jsonTime(t.GrabEnd), ValidUntil: optTime(t.ValidUntil),
		ValidDays: t.ValidDays, Version: t.Version, CreatedAt: jsonTime(t.CreatedAt), UpdatedAt: jsonTime(t.UpdatedAt),
	}
}

type subscriptionJSON struct {
	UserID     int64     `json:"user_id"`
	TemplateID int64     `json:"template_id"`
	PushAt     jsonTime  `json:"push_at"`
	Status     string    `json:"status"`
	PushID     string    `json:"push_id,omitempty"`
	SentAt     *jsonTime `json:"sent_at,omitempty"`
	CreatedAt  jsonTime  `json:"created_at"`
}

func subscriptionOut(s subscription.Subscription) subscriptionJSON {
	return subscriptionJSON{
		UserID: s.UserID, TemplateID: s.TemplateID, PushAt: jsonTime(s.PushAt), Status: string(s.Status),
		PushID: s.PushID, SentAt: optTime(s.SentAt), CreatedAt: jsonTime(s.CreatedAt),
	}
}

type subscriptionsJSON struct {
	Subscriptions []subscriptionJSON `json:"subscriptions"`
	// NextAfter, when set, is the ?after= of the next page: the page was
	// full, so more may follow.
	NextAfter int64 `json:"next_after,omitempty"`
}

// each is out applied to every element of in: a list's JSON form, never
// nil, so an empty list is [] rather than null.
func each[T, J any](in []T, out func(T) J) []J {
	js := make([]J, 0, len(in))
	for _, v := range in {
		js = append(js, out(v))
	}
	return js
}
