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

// TestNoYieldToAQueueHeldElsewhere: a slot leaves its queue only for a high
// queue whose lease it gets. While another holder has the one queue with
// high work, the slot drains its low queue in one visit, round after
// round, rather than giving it up every round.
func TestNoYieldToAQueueHeldElsewhere(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t)
	col := c.collector(t)
	const n = 2
	now, err := c.idx.Time(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var highUser int64
	lows := 0
	for u := int64(1); lows < 200 || highUser == 0; u++ {
		e := queue.Entry{UserID: u, TemplateID: 1, PushAt: now, Version: 1, Priority: queue.PriorityLow}
		switch {
		case queue.Shard(u, n) == 1 && highUser == 0:
			highUser, e.Priority = u, queue.PriorityHigh
		case queue.Shard(u, n) == 0 && lows < 200:
			lows++
		default:
			continue
		}
		if err := c.idx.Add(ctx, n, e); err != nil {
			t.Fatal(err)
		}
	}
	held, ok, err := c.idx.Acquire(ctx, 1, time.Minute) // another worker's, in effect
	if err != nil || !ok {
		t.Fatalf("acquire queue 1: %v %v", ok, err)
	}
	s := c.start(t, n, scheduler.Config{Slots: 1, PopBatch: 10})
	enginetest.Eventually(t, "queue 0's 200 low pushes", 30*time.Second, func() bool { return pushtest.Summarise(col.All()).Unique() == 200 })
	if y, l := s.Stats().Yields.Load(), s.Stats().LeasesAcquired.Load(); y != 0 || l > 2 {
		t.Fatalf("%d yields and %d leases for 20 rounds of one queue while the high one was held elsewhere; want none and at most 2", y, l)
	}
	if err := c.idx.Release(ctx, held); err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, "the high push once its queue is free", 30*time.Second, func() bool { return pushtest.Summarise(col.All()).Unique() == 201 })
}
