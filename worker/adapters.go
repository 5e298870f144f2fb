package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"couponpush/coupon"
	"couponpush/queue"
	"couponpush/scheduler"
	"couponpush/subscription"
)

// index is the subscription service's view of the queue index: it shards by
// the live queue count and retries when a queue says the count moved on.
type index struct {
	q     *queue.Client
	count func() int
}

func (i index) Add(ctx context.Context, e queue.Entry) error {
	return i.retry(ctx, func(n int) error { return i.q.Add(ctx, n, e) })
}

func (i index) Cancel(ctx context.Context, e queue.Entry) error {
	return i.retry(ctx, func(n int) error { return i.q.Cancel(ctx, n, e) })
}

func (i index) retry(ctx context.Context, op func(n int) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = op(i.count())
		if !errors.Is(err, queue.ErrStaleCount) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return fmt.Errorf("queue count kept changing: %w", err)
}

// grabStarts reads templates' grab start through the local template cache.
type grabStarts struct{ c *coupon.TemplateCache }

func (g grabStarts) GrabStart(ctx context.Context, id int64) (time.Time, error) {
	t, err := g.c.Get(ctx, id)
	if err != nil {
		return time.Time{}, err
	}
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
