package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"couponpush/internal/enginetest"
	"couponpush/queue"
)

// popThree indexes users 1-3 in queue 0 and pops them in one chunk.
func popThree(t *testing.T, c *queue.Client, l *queue.Lease) queue.Chunk {
	t.Helper()
	for u := int64(1); u <= 3; u++ {
		add(t, c, u, 10, t0, 1)
	}
	p := pop(t, c, l, t0)
	if len(p.Pushes) != 3 {
		t.Fatalf("popped %v, want users 1-3", p.Pushes)
	}
	return p.Chunk
}

func TestDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newClient(t)
	l := lease(t, c, 0)
	ch := popThree(t, c, l)
	poison := ch.Pushes[1]

	rest, ok, err := c.DeadLetter(ctx, l, ch, []queue.Unsent{{Index: 1, Reason: "too large:\n 5000 bytes"}})
	if err != nil || !ok {
		t.Fatalf("dead letter = %v, %v", ok, err)
	}
	if len(rest.Pushes) != 2 || rest.Pushes[0].UserID == poison.UserID || rest.Pushes[1].UserID == poison.UserID {
		t.Fatalf("rest = %+v, want the two other pushes", rest.Pushes)
	}
	if rec, err := c.Recover(ctx, l, queue.RecoverOptions{Now: farFuture, Deadline: time.Second, Max: 10, All: true}); err != nil || len(rec) != 0 {
		t.Fatalf("flights after dead letter = %v, %v; want none", rec, err)
	}
	marks, err := c.Marks(ctx, 0, farFuture, 10)
	if err != nil || len(marks) != 1 || marks[0].String() != rest.String() {
		t.Fatalf("marks = %v, %v; want the rest chunk", marks, err)
	}
	dead, err := c.DeadLetters(ctx, 0)
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters = %+v, %v; want one", dead, err)
	}
	if d := dead[0]; d.Push.UserID != poison.UserID || d.Reason != "too large: 5000 bytes" || d.At.IsZero() || d.Queue != 0 {
		t.Fatalf("dead letter = %+v, want user %d with its reason", d, poison.UserID)
	}

	// The rest is forgotten once marked; the dead push stays taken, so
	// neither a retried PUT nor the safety net indexes it again.
	if err := c.Forget(ctx, 0, []queue.Chunk{marks[0].Chunk}); err != nil {
		t.Fatal(err)
	}
	e := queue.Entry{UserID: poison.UserID, TemplateID: 10, PushAt: t0, Version: 1}
	if st, err := c.States(ctx, queue.Layout{From: 1, To: 1, Span: 1}, []queue.Entry{e}); err != nil || st[0] != queue.StateTaken {
		t.Fatalf("state of the dead reminder = %v, %v; want taken", st, err)
	}
	e.Version = 2
	if err := c.Add(ctx, oneQueue, e); !errors.Is(err, queue.ErrInFlight) {
		t.Fatalf("re-add of a dead reminder = %v, want ErrInFlight", err)
	}

	// Replay puts it back in flight unchanged; the holder recovers it.
	n, err := c.Replay(ctx, 0, dead)
	if err != nil || n != 1 {
		t.Fatalf("replay = %d, %v; want 1", n, err)
	}
	rec, err := c.Recover(ctx, l, queue.RecoverOptions{Deadline: time.Second, Max: 10})
	if err != nil || len(rec) != 1 || len(rec[0].Pushes) != 1 || rec[0].Pushes[0].UserID != poison.UserID {
		t.Fatalf("recovered after replay = %+v, %v; want the dead push", rec, err)
	}
	if got := rec[0].Pushes[0]; len(got.Items) != 1 || got.Items[0] != poison.Items[0] {
		t.Fatalf("replayed push = %+v, want %+v", got, poison)
	}
	if dead, err := c.DeadLetters(ctx, 0); err != nil || len(dead) != 0 {
		t.Fatalf("dead letters after replay = %+v, %v; want none", dead, err)
	}
	if n, err := c.Replay(ctx, 0, nil); err != nil || n != 0 {
		t.Fatalf("replay of an empty set = %d, %v", n, err)
	}
}

func TestDeadLetterNeedsTheLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newClient(t)
	old := lease(t, c, 0)
	ch := popThree(t, c, old)
	if err := c.Release(ctx, old); err != nil {
		t.Fatal(err)
	}
	cur := lease(t, c, 0)

	if _, _, err := c.DeadLetter(ctx, old, ch, []queue.Unsent{{Index: 0, Reason: "x"}}); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("dead letter with a lost lease = %v, want ErrLeaseLost", err)
	}
	if dead, err := c.DeadLetters(ctx, 0); err != nil || len(dead) != 0 {
		t.Fatalf("dead letters = %+v, %v; want none", dead, err)
	}
	if rec, err := c.Recover(ctx, cur, queue.RecoverOptions{Deadline: time.Second, Max: 10, All: true}); err != nil || len(rec) != 1 || rec[0].String() != ch.String() {
		t.Fatalf("flights = %v, %v; want the chunk untouched", rec, err)
	}
}

func TestDeadLetterIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := queue.New(enginetest.Redis(t), queue.Options{Prefix: enginetest.Prefix(t), MaxDead: 1})
	if err != nil {
		t.Fatal(err)
	}
	l := lease(t, c, 0)
	ch := popThree(t, c, l)
	_, _, err = c.DeadLetter(ctx, l, ch, []queue.Unsent{{Index: 0, Reason: "a"}, {Index: 2, Reason: "b"}})
	if !errors.Is(err, queue.ErrDeadFull) {
		t.Fatalf("dead letter past MaxDead = %v, want ErrDeadFull", err)
	}
	if rec, err := c.Recover(ctx, l, queue.RecoverOptions{Deadline: time.Second, Max: 10, All: true}); err != nil || len(rec) != 1 {
		t.Fatalf("flights = %v, %v; want the chunk still in flight", rec, err)
	}
	if _, ok, err := c.DeadLetter(ctx, l, ch, []queue.Unsent{{Index: 2, Reason: "b"}}); err != nil || !ok {
		t.Fatalf("dead letter within MaxDead = %v, %v", ok, err)
	}
}

func TestRemindersPerUserAreCapped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := queue.New(enginetest.Redis(t), queue.Options{Prefix: enginetest.Prefix(t), MaxRemindersPerUser: 2})
	if err != nil {
		t.Fatal(err)
	}
	e := func(tid, ver int64) queue.Entry {
		return queue.Entry{UserID: 5, TemplateID: tid, PushAt: t0.Add(time.Duration(tid) * time.Minute), Version: ver}
	}
	for _, tid := range []int64{1, 2} {
		if err := c.Add(ctx, oneQueue, e(tid, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Add(ctx, oneQueue, e(3, 1)); !errors.Is(err, queue.ErrUserFull) {
		t.Fatalf("third reminder = %v, want ErrUserFull", err)
	}
	if err := c.Add(ctx, oneQueue, e(2, 2)); err != nil {
		t.Fatalf("moving a held reminder = %v, want nil", err)
	}
	if err := c.Cancel(ctx, oneQueue, e(1, 3)); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(ctx, oneQueue, e(3, 1)); err != nil {
		t.Fatalf("reminder after a cancel made room = %v, want nil", err)
	}
}

func TestItemsPerPushAreCapped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newClient(t)
	l := lease(t, c, 0)
	for tid := int64(1); tid <= 5; tid++ {
		add(t, c, 9, tid, t0.Add(time.Duration(tid)*time.Second), 1)
	}
	var got [][]int64
	for range 4 {
		p, err := c.Pop(ctx, l, queue.PopOptions{Now: t0.Add(time.Minute), MergeWindow: 10 * time.Second, MaxUsers: 10, Deadline: time.Second, MaxItems: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, ps := range p.Chunk.Pushes {
			var tids []int64
			for _, it := range ps.Items {
				tids = append(tids, it.TemplateID)
			}
			got = append(got, tids)
		}
	}
	if len(got) != 3 || len(got[0]) != 2 || got[0][0] != 1 || len(got[1]) != 2 || got[1][0] != 3 || len(got[2]) != 1 || got[2][0] != 5 {
		t.Fatalf("pushes = %v, want [1 2] [3 4] [5]", got)
	}
}

func TestDeadLetterOnRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newClusterClient(t)
	const n = 4
	for u := int64(1); u <= 40; u++ {
		if err := c.Add(ctx, n, queue.Entry{UserID: u, TemplateID: 1, PushAt: t0, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for q := 0; q < n; q++ {
		l := lease(t, c, q)
		p := pop(t, c, l, t0)
		if len(p.Pushes) < 2 {
			t.Fatalf("queue %d popped %d pushes", q, len(p.Pushes))
		}
		if _, ok, err := c.DeadLetter(ctx, l, p.Chunk, []queue.Unsent{{Index: 0, Reason: "poison"}}); err != nil || !ok {
			t.Fatalf("dead letter on cluster q%d: %v, %v", q, ok, err)
		}
		if n, err := c.Replay(ctx, q, nil); err != nil || n != 1 {
			t.Fatalf("replay on cluster q%d = %d, %v", q, n, err)
		}
		rec, err := c.Recover(ctx, l, queue.RecoverOptions{Deadline: time.Second, Max: 10})
		if err != nil || len(rec) != 1 || rec[0].Pushes[0].UserID != p.Pushes[0].UserID {
			t.Fatalf("recover after replay on cluster q%d = %v, %v", q, rec, err)
		}
	}
}
