package subscription

import (
	"context"
	"testing"
	"time"

	"couponpush/queue"
	"couponpush/template"
)

// TestSubscribeIndexesTheTemplatesPriority: a reminder is indexed with its
// template's priority, and a PUT retried after the priority changed
// indexes it again, at the same version, with the new one.
func TestSubscribeIndexesTheTemplatesPriority(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	days, high, low := 7, template.PriorityHigh, template.PriorityLow
	tm, err := e.cache.Create(ctx, template.Draft{Name: "hot", Type: template.Fixed, Value: 500, Stock: 100,
		Priority: &high, GrabStart: grabStart, GrabEnd: grabStart.Add(time.Hour), ValidDays: &days})
	if err != nil {
		t.Fatal(err)
	}
	idx := newFakeIndex()
	s := e.service(newClock(grabStart.Add(-time.Hour)), idx)
	user := e.user()
	lastAdd := func() queue.Entry {
		t.Helper()
		idx.mu.Lock()
		defer idx.mu.Unlock()
		for i := len(idx.calls) - 1; i >= 0; i-- {
			if idx.calls[i].op == "add" {
				return idx.calls[i].e
			}
		}
		t.Fatal("no add reached the index")
		return queue.Entry{}
	}
	if _, _, err := s.Subscribe(ctx, user, tm.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got := lastAdd(); got.Priority != queue.PriorityHigh || got.Version != 1 {
		t.Fatalf("indexed %+v; want version 1, high", got)
	}
	if _, err := e.cache.Update(ctx, tm.ID, template.Patch{Priority: &low}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Subscribe(ctx, user, tm.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got := lastAdd(); got.Priority != queue.PriorityLow || got.Version != 1 {
		t.Fatalf("re-indexed %+v; want version 1, low", got)
	}
}
