package resize_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"couponpush/internal/enginetest"
	"couponpush/queue"
	"couponpush/resize"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

// TestStepFollowsTheTarget: the first step records a layout; each change
// of the target is carried out to the end by one step, a move left
// half-way by a dead coordinator is finished by the next, and the queues a
// smaller N left behind retire once empty.
func TestStepFollowsTheTarget(t *testing.T) {
	ctx := context.Background()
	idx, err := queue.New(enginetest.Redis(t), queue.Options{Prefix: enginetest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	var target atomic.Int64
	target.Store(4)
	router := idx.NewRouter(func() int { return 4 })
	c, err := resize.New(idx, resize.Config{Target: func() int { return int(target.Load()) }, Router: router, Batch: 10})
	if err != nil {
		t.Fatal(err)
	}
	layout := func() queue.LayoutStatus {
		t.Helper()
		st, ok, err := idx.LayoutStatus(ctx)
		if err != nil || !ok {
			t.Fatalf("layout: ok=%v err=%v", ok, err)
		}
		return st
	}
	if err := c.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if st := layout(); !st.Stable() || st.To != 4 {
		t.Fatalf("first layout %+v, want 4 queues", st)
	}
	at := time.Now().Add(time.Hour)
	for u := int64(1); u <= 200; u++ {
		if err := router.Add(ctx, queue.Entry{UserID: u, TemplateID: 1, PushAt: at, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}

	// A coordinator began 4 → 6, moved queue 0 and died.
	half, err := idx.BeginMove(ctx, layout().Layout, 6)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idx.MoveQueue(ctx, half, 0, 10); err != nil {
		t.Fatal(err)
	}
	target.Store(6)
	if err := c.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if st := layout(); !st.Stable() || st.To != 6 || st.Gen != half.Gen {
		t.Fatalf("layout after the finishing step %+v, want generation %d at 6 queues", st, half.Gen)
	}
	if got, _ := router.Layout(ctx); got.To != 6 || !got.Stable() {
		t.Fatalf("router sees %+v, want 6 queues", got)
	}
	has, err := router.Indexed(ctx, entries(200, at))
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range has {
		if !ok {
			t.Fatalf("user %d lost in the move", i+1)
		}
	}

	target.Store(2)
	if err := c.Step(ctx); err != nil {
		t.Fatal(err)
	}
	st := layout()
	if !st.Stable() || st.To != 2 || st.Span != 6 {
		t.Fatalf("layout after 6 → 2: %+v, want 2 queues spanning 6 until the next step", st)
	}
	if err := c.Step(ctx); err != nil { // nothing in flight: queues 2..5 retire
		t.Fatal(err)
	}
	if st := layout(); st.Span != 2 || router.Span() != 2 {
		t.Fatalf("span after retiring: layout %d, router %d, want 2", st.Span, router.Span())
	}
	if has, err = router.Indexed(ctx, entries(200, at)); err != nil {
		t.Fatal(err)
	}
	for i, ok := range has {
		if !ok {
			t.Fatalf("user %d lost in the move to 2", i+1)
		}
	}
}

func entries(n int, at time.Time) []queue.Entry {
	out := make([]queue.Entry, n)
	for i := range out {
		out[i] = queue.Entry{UserID: int64(i + 1), TemplateID: 1, PushAt: at, Version: 1}
	}
	return out
}

func TestNewRejectsBadConfig(t *testing.T) {
	idx, err := queue.New(nil, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := idx.NewRouter(func() int { return 1 })
	for name, cfg := range map[string]resize.Config{
		"no target":     {Router: r},
		"no router":     {Target: func() int { return 1 }},
		"lead, no lock": {Target: func() int { return 1 }, Router: r, Lead: true},
		"negative":      {Target: func() int { return 1 }, Router: r, Batch: -1},
	} {
		if _, err := resize.New(idx, cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

// TestStatsFollowAMove: a move that fails half-way (a record in queue 2
// that cannot be read) leaves Moving set with the old queues not yet moved
// out; the step that finishes it clears both.
func TestStatsFollowAMove(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := enginetest.Redis(t), enginetest.Prefix(t)
	idx, err := queue.New(rdb, queue.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	var target atomic.Int64
	target.Store(4)
	router := idx.NewRouter(func() int { return 4 })
	c, err := resize.New(idx, resize.Config{Target: func() int { return int(target.Load()) }, Router: router, Batch: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Step(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Hour)
	for u := int64(1); u <= 100; u++ {
		if err := router.Add(ctx, queue.Entry{UserID: u, TemplateID: 1, PushAt: at, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	st := c.Stats()
	if st.Moving.Load() || st.QueuesLeft.Load() != 0 {
		t.Fatalf("before any move: moving %v, queues left %d", st.Moving.Load(), st.QueuesLeft.Load())
	}

	bad := fmt.Sprintf("%s:{%s:q2}:items", prefix, prefix)
	if err := rdb.HSet(ctx, bad, "not-a-user", "x").Err(); err != nil {
		t.Fatal(err)
	}
	target.Store(6)
	if err := c.Step(ctx); err == nil {
		t.Fatal("the step moved a queue holding an unreadable record")
	}
	if !st.Moving.Load() || st.QueuesLeft.Load() != 2 {
		t.Fatalf("after a step failed at queue 2 of 4: moving %v, queues left %d, want true and 2", st.Moving.Load(), st.QueuesLeft.Load())
	}

	if err := rdb.HDel(ctx, bad, "not-a-user").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if st.Moving.Load() || st.QueuesLeft.Load() != 0 || st.Moves.Load() != 1 {
		t.Fatalf("after the move finished: moving %v, queues left %d, moves %d", st.Moving.Load(), st.QueuesLeft.Load(), st.Moves.Load())
	}
}
