package scheduler_test

import (
	"context"
	"testing"
	"time"

	"couponpush/internal/enginetest"
	"couponpush/internal/pushtest"
	"couponpush/queue"
	"couponpush/scheduler"
)

// TestHighFirstAcrossQueues: one slot, four queues, each holding high and
// low reminders all due at once. The slot leaves a queue whose high work is
// done for another queue's, so every high push is out before the median
// low one, not only before the lows of its own queue; and no low is lost.
// Popped at due and prepared ahead.
func TestHighFirstAcrossQueues(t *testing.T) {
	for _, ahead := range []time.Duration{0, 2 * time.Second} {
		name := "at due"
		if ahead > 0 {
			name = "ahead"
		}
		t.Run(name, func(t *testing.T) { highFirstAcrossQueues(t, ahead) })
	}
}

func highFirstAcrossQueues(t *testing.T, ahead time.Duration) {
	ctx := context.Background()
	c := newCluster(t)
	c.ahead = ahead
	idx, err := queue.New(enginetest.Redis(t), queue.Options{Prefix: c.prefix, PrepareAhead: ahead})
	if err != nil {
		t.Fatal(err)
	}
	col := c.collector(t)
	const n, users = 4, 800 // users odd high, even low
	now, err := idx.Time(ctx)
	if err != nil {
		t.Fatal(err)
	}
	due := now.Add(ahead + time.Second)
	for u := int64(1); u <= users; u++ {
		e := queue.Entry{UserID: u, TemplateID: 1, PushAt: due, Version: 1, Priority: queue.PriorityLow}
		if u%2 == 1 {
			e.Priority = queue.PriorityHigh
		}
		if err := idx.Add(ctx, n, e); err != nil {
			t.Fatal(err)
		}
	}
	s := c.start(t, n, scheduler.Config{Slots: 1, PopBatch: 20})
	enginetest.Eventually(t, "every push", 30*time.Second, func() bool { return pushtest.Summarise(col.All()).Unique() == users })
	got := col.All()
	if r := pushtest.Summarise(got); r.Repeats != 0 {
		t.Fatalf("%d repeats", r.Repeats)
	}
	lastHigh, lows := -1, []int{}
	for i, p := range got {
		if p.UserID%2 == 1 {
			lastHigh = i
		} else {
			lows = append(lows, i)
		}
	}
	if len(lows) != users/2 {
		t.Fatalf("%d low pushes, want %d", len(lows), users/2)
	}
	if median := lows[len(lows)/2]; lastHigh > median {
		t.Fatalf("last high push at %d of %d, after the median low one at %d (yields %d)", lastHigh, len(got), median, s.Stats().Yields.Load())
	}
	t.Logf("last high push at %d of %d; median low at %d; %d yields", lastHigh, len(got), lows[len(lows)/2], s.Stats().Yields.Load())
}
