package worker

import (
	"context"
	"sync"
	"time"

	"couponpush/scheduler"
	"couponpush/subscription"
	"couponpush/template"
)

// grabStarts tells the scheduler templates' grab starts. A template the
// scheduler asks about has subscribers, and a template with subscribers
// never changes its grab start (409 has_subscribers), so an answer is kept
// for good (bounded: the map is dropped when it grows past maxGrabStarts)
// and delivery reads MySQL once per template, not once per cache TTL.
type grabStarts struct {
	c    *template.Cache
	mu   sync.RWMutex
	seen map[int64]time.Time
}

const maxGrabStarts = 100_000

func newGrabStarts(c *template.Cache) *grabStarts {
	return &grabStarts{c: c, seen: map[int64]time.Time{}}
}

func (g *grabStarts) GrabStart(ctx context.Context, id int64) (time.Time, error) {
	g.mu.RLock()
	gs, ok := g.seen[id]
	g.mu.RUnlock()
	if ok {
		return gs, nil
	}
	t, err := g.c.Get(ctx, id)
	if err != nil {
		return time.Time{}, err
	}
	g.mu.Lock()
	if len(g.seen) >= maxGrabStarts {
		clear(g.seen)
	}
	g.seen[id] = t.GrabStart
	g.mu.Unlock()
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
