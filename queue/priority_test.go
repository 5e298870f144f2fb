package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"couponpush/internal/enginetest"
	"couponpush/queue"
)

func addPrio(t *testing.T, c *queue.Client, n int, user, tid int64, at time.Time, ver int64, p queue.Priority) {
	t.Helper()
	if err := c.Add(context.Background(), n, queue.Entry{UserID: user, TemplateID: tid, PushAt: at, Version: ver, Priority: p}); err != nil {
		t.Fatalf("add %d/%d: %v", user, tid, err)
	}
}

// popMax pops at most max users at now.
func popMax(t *testing.T, c *queue.Client, l *queue.Lease, now time.Time, max int) queue.Popped {
	t.Helper()
	p, err := c.Pop(context.Background(), l, queue.PopOptions{Now: now, MergeWindow: 10 * time.Second, MaxUsers: max, Deadline: 10 * time.Second})
	if err != nil {
		t.Fatalf("pop at %v: %v", now, err)
	}
	return p
}

// popN is popMax's pushes.
func popN(t *testing.T, c *queue.Client, l *queue.Lease, now time.Time, max int) []queue.Push {
	t.Helper()
	return popMax(t, c, l, now, max).Chunk.Pushes
}

// userSet is the users of pushes.
func userSet(ps []queue.Push) map[int64]bool {
	out := map[int64]bool{}
	for _, p := range ps {
		out[p.UserID] = true
	}
	return out
}

// TestPriorityOrdersABacklog: with more due than one pop takes, high goes
// before normal before low, whatever the order they were added in; a low
// one still comes, none is lost or doubled.
func TestPriorityOrdersABacklog(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	l := lease(t, c, 0)
	// Users 1-10 low, 11-20 normal, 21-30 high, all due at t0; lows added first.
	for u := int64(1); u <= 30; u++ {
		p := queue.PriorityLow
		if u > 10 {
			p = queue.PriorityNormal
		}
		if u > 20 {
			p = queue.PriorityHigh
		}
		addPrio(t, c, oneQueue, u, 7, t0, 1, p)
	}
	want := [][2]int64{{21, 30}, {11, 20}, {1, 10}}
	seen := map[int64]bool{}
	for round, r := range want {
		got := popN(t, c, l, t0.Add(time.Second), 10)
		if len(got) != 10 {
			t.Fatalf("round %d popped %d pushes, want 10", round, len(got))
		}
		for _, p := range got {
			if p.UserID < r[0] || p.UserID > r[1] {
				t.Fatalf("round %d popped user %d; want users %d-%d", round, p.UserID, r[0], r[1])
			}
			if seen[p.UserID] {
				t.Fatalf("user %d popped twice", p.UserID)
			}
			seen[p.UserID] = true
		}
	}
	if rest := popN(t, c, l, t0.Add(time.Hour), 10); len(rest) != 0 {
		t.Fatalf("popped more than was due: %v", rest)
	}
}

// TestPriorityAgesUp: a low push due long enough before a high one (twice
// the ageing) goes first, so a low backlog is never starved; one due only a
// little earlier waits.
func TestPriorityAgesUp(t *testing.T) {
	t.Parallel()
	rdb := enginetest.Redis(t)
	c, err := queue.New(rdb, queue.Options{Prefix: enginetest.Prefix(t), Ageing: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l := lease(t, c, 0)
	addPrio(t, c, oneQueue, 1, 7, t0, 1, queue.PriorityLow)                             // old low: e = t0 + 2 s
	addPrio(t, c, oneQueue, 2, 7, t0.Add(2500*time.Millisecond), 1, queue.PriorityHigh) // e = t0 + 2.5 s
	addPrio(t, c, oneQueue, 3, 7, t0.Add(1500*time.Millisecond), 1, queue.PriorityLow)  // e = t0 + 3.5 s
	now := t0.Add(3 * time.Second)
	for _, want := range []int64{1, 2, 3} {
		got := popN(t, c, l, now, 1)
		if len(got) != 1 || got[0].UserID != want {
			t.Fatalf("popped %v; want user %d next", got, want)
		}
	}
}

// TestMergedPushTakesItsMostUrgentClass: a user whose low reminder is
// merged with a high one (within the class window) is popped as high.
func TestMergedPushTakesItsMostUrgentClass(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	l := lease(t, c, 0)
	addPrio(t, c, oneQueue, 1, 7, t0, 1, queue.PriorityNormal)
	addPrio(t, c, oneQueue, 2, 7, t0, 1, queue.PriorityLow)
	addPrio(t, c, oneQueue, 2, 8, t0.Add(time.Second), 1, queue.PriorityHigh)
	got := popN(t, c, l, t0.Add(2*time.Second), 1)
	if len(got) != 1 || got[0].UserID != 2 || len(got[0].Items) != 2 {
		t.Fatalf("popped %+v; want user 2 first, with both items", got)
	}
	if got := popN(t, c, l, t0.Add(2*time.Second), 1); len(got) != 1 || got[0].UserID != 1 {
		t.Fatalf("then popped %+v; want user 1", got)
	}
}

// TestRetriedAddTakesANewClass: the same version added again with another
// priority (a PUT retried after the template's priority changed) moves the
// pending reminder to that class; the record says so.
func TestRetriedAddTakesANewClass(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newClient(t)
	l := lease(t, c, 0)
	addPrio(t, c, oneQueue, 1, 7, t0, 1, queue.PriorityNormal)
	addPrio(t, c, oneQueue, 2, 7, t0, 1, queue.PriorityLow)
	addPrio(t, c, oneQueue, 2, 7, t0, 1, queue.PriorityHigh)
	rec, _, err := c.UserRecord(ctx, 0, 2)
	if err != nil || len(rec) != 1 || rec[0].Priority != queue.PriorityHigh || rec[0].State != queue.StatePending {
		t.Fatalf("record = %+v, %v; want one pending high entry", rec, err)
	}
	if got := popN(t, c, l, t0, 1); len(got) != 1 || got[0].UserID != 2 {
		t.Fatalf("popped %+v; want user 2 (now high) first", got)
	}
	if err := c.Add(ctx, oneQueue, queue.Entry{UserID: 3, TemplateID: 7, PushAt: t0, Version: 1, Priority: 5}); err == nil {
		t.Fatal("added an entry with an invalid priority")
	}
}

// TestPriorityPreparedAndBegun: work prepared ahead is kept per class and
// begun most urgent first; a cancel withdraws a prepared high item; the
// backlog per class is what Inspect shows.
func TestPriorityPreparedAndBegun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := enginetest.Redis(t)
	c := newAheadClient(t, rdb, queue.Options{})
	l := lease(t, c, 0)
	for u := int64(1); u <= 4; u++ {
		p := queue.PriorityLow
		if u > 2 {
			p = queue.PriorityHigh
		}
		addPrio(t, c, oneQueue, u, 7, t0, 1, p)
	}
	var ids []string
	for {
		p := prepare(t, c, l, t0.Add(-time.Second))
		if p.ID == "" {
			break
		}
		ids = append(ids, p.ID)
	}
	if len(ids) != 2 || ids[0][0] != 'h' || ids[1][0] != 'l' {
		t.Fatalf("prepared chunks %v; want a high one, then a low one", ids)
	}
	if err := c.Cancel(ctx, oneQueue, queue.Entry{UserID: 3, TemplateID: 7, PushAt: t0, Version: 2}); err != nil {
		t.Fatalf("cancel of a prepared high item: %v", err)
	}
	// One Begin takes chunks of one class: room for more, the high one only.
	b := begin(t, c, l, t0)
	if len(b) != 1 || b[0].ID != ids[0] {
		t.Fatalf("begun %+v; want the high chunk %s alone", b, ids[0])
	}
	if got := userSet(b[0].Chunk.Pushes); len(got) != 1 || !got[4] {
		t.Fatalf("high chunk holds %v; want user 4 only (3 cancelled)", got)
	}
	b = begin(t, c, l, t0)
	if len(b) != 1 || b[0].ID != ids[1] || len(b[0].Chunk.Pushes) != 2 {
		t.Fatalf("then begun %+v; want the low chunk with two pushes", b)
	}
}

// TestBacklogPerPriority: Inspect counts the users due and not taken, per
// class of their next push.
func TestBacklogPerPriority(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newClient(t)
	past := time.Now().Add(-time.Minute)
	addPrio(t, c, oneQueue, 1, 7, past, 1, queue.PriorityHigh)
	addPrio(t, c, oneQueue, 2, 7, past, 1, queue.PriorityLow)
	addPrio(t, c, oneQueue, 3, 7, past, 1, queue.PriorityLow)
	addPrio(t, c, oneQueue, 4, 7, past, 1, queue.PriorityNormal)
	addPrio(t, c, oneQueue, 5, 7, time.Now().Add(time.Hour), 1, queue.PriorityHigh) // not due: no backlog
	qs, err := c.Inspect(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := qs[0].Backlog, [3]int64{1, 1, 2}; got != want {
		t.Fatalf("backlog = %v, want %v (high, normal, low)", got, want)
	}
	if qs[0].DueUsers != 5 {
		t.Fatalf("due users = %d, want 5", qs[0].DueUsers)
	}
}

// TestPriorityOnRedisCluster: the classes' keys share their queue's slot;
// a backlog of mixed classes is popped high first on a real cluster.
func TestPriorityOnRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newClusterClient(t)
	const n = 4
	for u := int64(1); u <= 80; u++ {
		p := queue.PriorityLow
		if u%2 == 0 {
			p = queue.PriorityHigh
		}
		addPrio(t, c, n, u, 7, t0, 1, p)
	}
	total := 0
	for q := 0; q < n; q++ {
		l := lease(t, c, q)
		lowSeen := int64(0)
		for {
			got := popN(t, c, l, t0, 5)
			if len(got) == 0 {
				break
			}
			for _, p := range got {
				if p.UserID%2 != 0 {
					lowSeen = p.UserID
				} else if lowSeen != 0 {
					t.Fatalf("queue %d popped high user %d after low user %d", q, p.UserID, lowSeen)
				}
			}
			total += len(got)
		}
		if err := c.Release(ctx, l); err != nil && !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatal(err)
		}
	}
	if total != 80 {
		t.Fatalf("popped %d on cluster, want 80", total)
	}
}

// TestParsePriority: each priority's name parses back to it; any other
// name (other cases included) is refused as normal.
func TestParsePriority(t *testing.T) {
	for _, p := range queue.Priorities {
		if got, ok := queue.ParsePriority(p.String()); !ok || got != p {
			t.Errorf("ParsePriority(%q) = %v, %v; want %v", p.String(), got, ok, p)
		}
	}
	for _, name := range []string{"", "High", "urgent"} {
		if got, ok := queue.ParsePriority(name); ok || got != queue.PriorityNormal {
			t.Errorf("ParsePriority(%q) = %v, %v; want normal, false", name, got, ok)
		}
	}
}

// TestUrgentQueuesIndex: an add of a high reminder names its queue in the
// urgent index; HighDue tells whether a queue still holds high work; once
// it is taken, SetNext clears the queue's entry, and Reconcile puts back
// one an update lost. Normal and low work never enter it.
func TestUrgentQueuesIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, rdb := newClient(t)
	const n = 4
	// User 1 high, 2 normal, 3 low; each in its queue.
	for u, p := range map[int64]queue.Priority{1: queue.PriorityHigh, 2: queue.PriorityNormal, 3: queue.PriorityLow} {
		addPrio(t, c, n, u, 7, t0, 1, p)
	}
	hq := queue.Shard(1, n)
	urgent := func(at time.Time) []int {
		t.Helper()
		qs, err := c.UrgentQueues(ctx, at, 10)
		if err != nil {
			t.Fatal(err)
		}
		return qs
	}
	if got := urgent(t0.Add(-time.Second)); len(got) != 0 {
		t.Fatalf("urgent before due = %v, want none", got)
	}
	if got := urgent(t0); len(got) != 1 || got[0] != hq {
		t.Fatalf("urgent at due = %v, want [%d] (user 1's queue)", got, hq)
	}
	for q := 0; q < n; q++ {
		high, err := c.HighDue(ctx, q, t0)
		if err != nil || high != (q == hq) {
			t.Fatalf("HighDue(%d) = %v, %v; want %v", q, high, err, q == hq)
		}
	}
	l := lease(t, c, hq)
	if got := popN(t, c, l, t0.Add(time.Second), 10); len(userSet(got)) == 0 || !userSet(got)[1] {
		t.Fatalf("pop of queue %d = %v, want user 1", hq, got)
	}
	if high, err := c.HighDue(ctx, hq, t0.Add(time.Second)); err != nil || high {
		t.Fatalf("HighDue after the pop = %v, %v; want false", high, err)
	}
	if err := c.SetNext(ctx, hq, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got := urgent(t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("urgent after the high work was taken = %v, want none", got)
	}
	// An index entry lost (a worker killed between its writes) comes back.
	addPrio(t, c, n, 5, 7, t0, 1, queue.PriorityHigh)
	if err := c.SetNext(ctx, queue.Shard(5, n), time.Time{}); err != nil { // clears nothing: user 5 is there
		t.Fatal(err)
	}
	if err := rdb.Del(ctx, enginetest.Prefix(t)+":next:high").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Reconcile(ctx, n, t0); err != nil {
		t.Fatal(err)
	}
	if got := urgent(t0); len(got) != 1 || got[0] != queue.Shard(5, n) {
		t.Fatalf("urgent after Reconcile = %v, want [%d]", got, queue.Shard(5, n))
	}
}
