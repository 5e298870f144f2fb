package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"couponpush/scheduler"
	"couponpush/subscription"
	"couponpush/template"
)

// grabStarts tells the scheduler templates' grab starts. A template the
// scheduler asks about has subscribers, and a template with subscribers
// never changes its grab start (409 has_subscribers), so an answer is kept
// for good in a template.FinalStarts (at most template.MaxFinalStarts
// templates) and delivery reads MySQL once per template, not once per
// cache TTL.
type grabStarts struct {
	c     *template.Cache
	final template.FinalStarts
}

func newGrabStarts(c *template.Cache) *grabStarts {
	return &grabStarts{c: c}
}

func (g *grabStarts) GrabStart(ctx context.Context, id int64) (time.Time, error) {
	if gs, ok := g.final.Get(id); ok {
		return gs, nil
	}
	t, err := g.c.Get(ctx, id)
	if errors.Is(err, template.ErrNotFound) {
		return time.Time{}, fmt.Errorf("%w: %w", scheduler.ErrNoTemplate, err)
	}
	if err != nil {
		return time.Time{}, err
	}
	g.final.Add(t)
	return t.GrabStart, nil
}

// marker records sent reminders through the subscription service.
type marker struct{ s *subscription.Service }

func (m marker) MarkSent(ctx context.Context, sent []scheduler.Sent) error {
	rows := make([]subscription.Sent, len(sent))
	for i, s := range sent {
		rows[i] = subscription.Sent{UserID: s.UserID, TemplateID: s.TemplateID, PushID: s.PushID, SentAt: s.SentAt}
	}
	return m.s.MarkSent(ctx, rows)
}
