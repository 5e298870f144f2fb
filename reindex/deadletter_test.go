package reindex_test

import (
	"context"
	"testing"
	"time"

	"couponpush/internal/enginetest"
	"couponpush/queue"
	"couponpush/reindex"
)

// TestRebuildLeavesDeadLettersAlone: a dead-lettered reminder stays pending
// in MySQL and taken in its queue, so neither Rebuild nor the reindex job
// indexes it again as if it were lost; only a replay sends it.
func TestRebuildLeavesDeadLettersAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := rebuildDB(t)
	idx, err := queue.New(enginetest.Redis(t), queue.Options{Prefix: enginetest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	r := idx.NewRouter(func() int { return 1 })
	now := time.Now().Truncate(time.Millisecond)
	// Due within the reindex window (the test pops it early by passing Now).
	e := insertRow(t, db, 9, 7, now.Add(time.Minute), "pending", 1)
	if err := r.Add(ctx, e); err != nil {
		t.Fatal(err)
	}
	l, ok, err := idx.Acquire(ctx, 0, time.Minute)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	p, err := idx.Pop(ctx, l, queue.PopOptions{Now: now.Add(time.Minute), MergeWindow: time.Second, MaxUsers: 10, Deadline: time.Minute})
	if err != nil || len(p.Chunk.Pushes) != 1 {
		t.Fatalf("pop: %+v %v", p, err)
	}
	if _, ok, err := idx.DeadLetter(ctx, l, p.Chunk, []queue.Unsent{{Index: 0, Reason: "poison"}}); err != nil || !ok {
		t.Fatalf("dead letter: %v %v", ok, err)
	}

	res, err := reindex.Rebuild(ctx, db, reindex.Routed{Router: r, Client: idx}, 10, nil)
	if err != nil || res.Read != 1 || res.Taken != 1 || res.Indexed != 0 {
		t.Fatalf("rebuild = %+v, %v; want the dead reminder counted taken", res, err)
	}
	job, err := reindex.New(db, r, reindex.Config{Margin: time.Second, Horizon: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if jr, err := job.Run(ctx); err != nil || jr.Checked != 1 || jr.Repaired != 0 {
		t.Fatalf("reindex = %+v, %v; want it checked and left alone", jr, err)
	}
	if p, err := idx.Pop(ctx, l, queue.PopOptions{Now: now.Add(time.Hour), MergeWindow: time.Second, MaxUsers: 10, Deadline: time.Minute}); err != nil || len(p.Chunk.Pushes) != 0 {
		t.Fatalf("pop after rebuild = %+v, %v; want nothing", p, err)
	}
	if dead, err := idx.DeadLetters(ctx, 0); err != nil || len(dead) != 1 {
		t.Fatalf("dead letters = %+v, %v; want the one", dead, err)
	}
}
