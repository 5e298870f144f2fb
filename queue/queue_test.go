package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/enginetest"
	"couponpush/queue"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

var t0 = time.Date(2026, 11, 23, 9, 59, 0, 0, time.UTC)

// farFuture is after every ack a test makes.
var farFuture = time.Now().Add(24 * time.Hour)

func newClient(t *testing.T) (*queue.Client, redis.UniversalClient) {
	t.Helper()
	rdb := enginetest.Redis(t)
	c, err := queue.New(rdb, queue.Options{Prefix: enginetest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c, rdb
}

// clusterRedis is a client of the test's real Redis Cluster.
func clusterRedis(t *testing.T) *redis.ClusterClient {
	t.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: enginetest.RedisCluster(t)})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// newClusterClient is newClient on the test's real Redis Cluster.
func newClusterClient(t *testing.T) (*queue.Client, *redis.ClusterClient) {
	t.Helper()
	rdb := clusterRedis(t)
	c, err := queue.New(rdb, queue.Options{Prefix: enginetest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c, rdb
}

// oneQueue makes every user land in queue 0.
const oneQueue = 1

func lease(t *testing.T, c *queue.Client, q int) *queue.Lease {
	t.Helper()
	l, ok, err := c.Acquire(context.Background(), q, 5*time.Second)
	if err != nil || !ok {
		t.Fatalf("acquire %d: ok=%v err=%v", q, ok, err)
	}
	return l
}

func add(t *testing.T, c *queue.Client, user, tid int64, at time.Time, ver int64) {
	t.Helper()
	addPrio(t, c, oneQueue, user, tid, at, ver, queue.PriorityNormal)
}

// popped is a pop's answer with its pushes at hand.
type popped struct {
	queue.Popped
	Pushes []queue.Push
}

func pop(t *testing.T, c *queue.Client, l *queue.Lease, now time.Time) popped {
	t.Helper()
	p := popMax(t, c, l, now, 1000)
	return popped{p, p.Chunk.Pushes}
}

func TestPopIsDueToTheMillisecond(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	l := lease(t, c, 0)
	at := t0.Add(123 * time.Millisecond)
	add(t, c, 42, 7, at, 1)

	if got := pop(t, c, l, at.Add(-time.Millisecond)); len(got.Pushes) != 0 {
		t.Fatalf("popped %v one millisecond early", got.Pushes)
	}
	got := pop(t, c, l, at)
	if len(got.Pushes) != 1 || got.Pushes[0].UserID != 42 || !got.Pushes[0].DueAt().Equal(at) {
		t.Fatalf("pop at due time = %+v, want user 42 due %v", got.Pushes, at)
	}
	if again := pop(t, c, l, at.Add(time.Hour)); len(again.Pushes) != 0 {
		t.Fatalf("popped twice: %v", again.Pushes)
	}
}

func TestMergeWindow(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	l := lease(t, c, 0)
	add(t, c, 1, 10, t0, 1)
	add(t, c, 1, 11, t0.Add(10*time.Second), 1)         // within the window: merged
	add(t, c, 1, 12, t0.Add(10001*time.Millisecond), 1) // just outside: its own push

	got := pop(t, c, l, t0)
	if len(got.Pushes) != 1 {
		t.Fatalf("pushes = %v, want one", got.Pushes)
	}
	p := got.Pushes[0]
	if len(p.Items) != 2 || p.Items[0].TemplateID != 10 || p.Items[1].TemplateID != 11 || !p.DueAt().Equal(t0) {
		t.Fatalf("merged push = %+v, want templates 10 and 11 due at %v", p, t0)
	}
	if want := t0.Add(10001 * time.Millisecond); !got.Next.Equal(want) {
		// The flight deadline (t0+10s) is earlier than the third item.
		if !got.Next.Equal(t0.Add(10 * time.Second)) {
			t.Fatalf("next = %v, want the flight deadline or %v", got.Next, want)
		}
	}
	rest := pop(t, c, l, t0.Add(10001*time.Millisecond))
	if len(rest.Pushes) != 1 || rest.Pushes[0].Items[0].TemplateID != 12 {
		t.Fatalf("third item = %+v", rest.Pushes)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name    string
		run     func(c *queue.Client, l *queue.Lease) error
		wantErr error
		popped  int
	}{
		{"cancel before due is never pushed", func(c *queue.Client, l *queue.Lease) error {
			add(t, c, 5, 1, t0, 1)
			return c.Cancel(ctx, oneQueue, queue.Entry{UserID: 5, TemplateID: 1, PushAt: t0, Version: 2})
		}, nil, 0},
		{"cancel that overtook its add wins", func(c *queue.Client, l *queue.Lease) error {
			if err := c.Cancel(ctx, oneQueue, queue.Entry{UserID: 5, TemplateID: 1, PushAt: t0, Version: 2}); err != nil {
				return err
			}
			add(t, c, 5, 1, t0, 1) // the PUT's late write: older version, ignored
			return nil
		}, nil, 0},
		{"resubscribe after cancel is pushed once", func(c *queue.Client, l *queue.Lease) error {
			add(t, c, 5, 1, t0, 1)
			if err := c.Cancel(ctx, oneQueue, queue.Entry{UserID: 5, TemplateID: 1, PushAt: t0, Version: 2}); err != nil {
				return err
			}
			add(t, c, 5, 1, t0, 3)
			add(t, c, 5, 1, t0, 3) // retry: unchanged
			return nil
		}, nil, 1},
		{"cancel after pop is refused", func(c *queue.Client, l *queue.Lease) error {
			add(t, c, 5, 1, t0, 1)
			if got := pop(t, c, l, t0); len(got.Pushes) != 1 {
				t.Fatalf("pop = %v", got.Pushes)
			}
			return c.Cancel(ctx, oneQueue, queue.Entry{UserID: 5, TemplateID: 1, PushAt: t0, Version: 2})
		}, queue.ErrInFlight, 0},
		{"cancel of one template keeps the other", func(c *queue.Client, l *queue.Lease) error {
			add(t, c, 5, 1, t0, 1)
			add(t, c, 5, 2, t0.Add(time.Second), 1)
			return c.Cancel(ctx, oneQueue, queue.Entry{UserID: 5, TemplateID: 1, PushAt: t0, Version: 2})
		}, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newClient(t)
			l := lease(t, c, 0)
			if err := tc.run(c, l); !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got := pop(t, c, l, t0.Add(time.Hour)); len(got.Pushes) != tc.popped {
				t.Fatalf("popped %v, want %d pushes", got.Pushes, tc.popped)
			}
		})
	}
}

func TestLeaseFencing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, rdb := newClient(t)
	add(t, c, 9, 1, t0, 1)
	old := lease(t, c, 0)
	if _, ok, err := c.Acquire(ctx, 0, time.Second); ok || err != nil {
		t.Fatalf("second acquire ok=%v err=%v, want refused", ok, err)
	}
	// The old holder stalls past its lease; another worker takes the queue.
	if err := rdb.Del(ctx, enginetest.Prefix(t)+":{"+enginetest.Prefix(t)+":q0}:lease").Err(); err != nil {
		t.Fatal(err)
	}
	fresh := lease(t, c, 0)
	if _, err := c.Pop(ctx, old, queue.PopOptions{Now: t0, MaxUsers: 10, Deadline: time.Second}); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("stale pop err = %v, want ErrLeaseLost", err)
	}
	if err := c.Renew(ctx, old, time.Second); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("stale renew err = %v, want ErrLeaseLost", err)
	}
	got := pop(t, c, fresh, t0)
	if _, err := c.Ack(ctx, old, got.Chunk); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("stale ack err = %v, want ErrLeaseLost", err)
	}
	if err := c.Renew(ctx, fresh, time.Second); err != nil {
		t.Fatalf("holder renew: %v", err)
	}
	if err := c.Release(ctx, fresh); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := c.Release(ctx, fresh); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("second release err = %v, want ErrLeaseLost", err)
	}
}

func TestRecoverRepublishesTheSameChunk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newClient(t)
	add(t, c, 3, 1, t0, 1)
	add(t, c, 3, 2, t0.Add(2*time.Second), 1)
	crashed := lease(t, c, 0)
	taken := pop(t, c, crashed, t0)
	if len(taken.Pushes) != 1 {
		t.Fatalf("pop = %v", taken.Pushes)
	}
	// A cancel and a new subscription while the push is in flight change nothing in it.
	if err := c.Cancel(ctx, oneQueue, queue.Entry{UserID: 3, TemplateID: 2, PushAt: t0, Version: 2}); !errors.Is(err, queue.ErrInFlight) {
		t.Fatalf("cancel in flight err = %v", err)
	}
	// A retried PUT of a taken reminder does not index it again.
	if err := c.Add(ctx, oneQueue, queue.Entry{UserID: 3, TemplateID: 1, PushAt: t0, Version: 1}); err != nil {
		t.Fatalf("retried add: %v", err)
	}
	add(t, c, 3, 4, t0.Add(time.Second), 1)
	if err := c.Release(ctx, crashed); err != nil {
		t.Fatal(err)
	}

	next := lease(t, c, 0)
	early, err := c.Recover(ctx, next, queue.RecoverOptions{Now: t0, Deadline: 10 * time.Second, Max: 100})
	if err != nil || len(early) != 0 {
		t.Fatalf("recover before deadline = %v, %v", early, err)
	}
	all, err := c.Recover(ctx, next, queue.RecoverOptions{Now: t0, Deadline: 10 * time.Second, Max: 100, All: true})
	if err != nil || len(all) != 1 || all[0].String() != taken.Chunk.String() {
		t.Fatalf("recover all = %v, %v; want %v", all, err, taken.Chunk)
	}
	late, err := c.Recover(ctx, next, queue.RecoverOptions{Now: t0.Add(21 * time.Second), Deadline: 10 * time.Second, Max: 100})
	if err != nil || len(late) != 1 || late[0].String() != taken.Chunk.String() {
		t.Fatalf("recover after deadline = %v, %v", late, err)
	}
	if ok, err := c.Ack(ctx, next, late[0]); err != nil || !ok {
		t.Fatalf("ack = %v, %v", ok, err)
	}
	if ok, err := c.Ack(ctx, next, late[0]); err != nil || ok {
		t.Fatalf("second ack = %v, %v; want false", ok, err)
	}
	acked, err := c.OldestMark(ctx, 0)
	if err != nil || acked.IsZero() {
		t.Fatalf("oldest mark = %v, %v", acked, err)
	}
	if early, err := c.Marks(ctx, 0, acked.Add(-time.Millisecond), 10); err != nil || len(early) != 0 {
		t.Fatalf("marks acked before the oldest = %v, %v; want none", early, err)
	}
	marks, err := c.Marks(ctx, 0, acked, 10)
	if err != nil || len(marks) != 1 || !marks[0].AckedAt.Equal(acked) {
		t.Fatalf("marks = %v, %v; want one acked at %v", marks, err, acked)
	}
	// Until MySQL knows, the taken reminder cannot be indexed again.
	if has, _ := c.Indexed(ctx, oneQueue, []queue.Entry{{UserID: 3, TemplateID: 1}}); !has[0] {
		t.Fatal("taken reminder forgotten before its sent-mark")
	}
	if err := c.Forget(ctx, 0, []queue.Chunk{marks[0].Chunk}); err != nil {
		t.Fatal(err)
	}
	if err := c.Forget(ctx, 0, []queue.Chunk{marks[0].Chunk}); err != nil {
		t.Fatalf("second forget: %v", err)
	}
	if marks, _ := c.Marks(ctx, 0, farFuture, 10); len(marks) != 0 {
		t.Fatalf("marks after forget = %v", marks)
	}
	if acked, err := c.OldestMark(ctx, 0); err != nil || !acked.IsZero() {
		t.Fatalf("oldest mark after forget = %v, %v; want none", acked, err)
	}
	if has, _ := c.Indexed(ctx, oneQueue, []queue.Entry{{UserID: 3, TemplateID: 1}, {UserID: 3, TemplateID: 4}}); has[0] || !has[1] {
		t.Fatalf("after forget: taken entry kept %v, pending one kept %v; want false, true", has[0], has[1])
	}
	// The new subscription is pushed on its own; the taken ones never again.
	rest := pop(t, c, next, t0.Add(time.Minute)).Pushes
	if len(rest) != 1 || len(rest[0].Items) != 1 || rest[0].Items[0].TemplateID != 4 {
		t.Fatalf("after recovery pop = %v", rest)
	}
	if again := pop(t, c, next, t0.Add(2*time.Hour)).Pushes; len(again) != 0 {
		t.Fatalf("taken reminders popped again: %v", again)
	}
}

func TestPopIsBounded(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	l := lease(t, c, 0)
	ctx := context.Background()
	for u := int64(1); u <= 250; u++ {
		add(t, c, u, 1, t0, 1)
	}
	total := 0
	for i := 0; i < 5; i++ {
		p, err := c.Pop(ctx, l, queue.PopOptions{Now: t0, MaxUsers: 100, Deadline: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Chunk.Pushes) > 100 {
			t.Fatalf("pop returned %d users, bound is 100", len(p.Chunk.Pushes))
		}
		total += len(p.Chunk.Pushes)
	}
	if total != 250 {
		t.Fatalf("popped %d, want 250", total)
	}
}

func TestRedisClockWhenNoTimeGiven(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newClient(t)
	l := lease(t, c, 0)
	now, err := c.Time(ctx)
	if err != nil {
		t.Fatal(err)
	}
	add(t, c, 1, 1, now.Add(-time.Second), 1)
	add(t, c, 2, 1, now.Add(time.Hour), 1)
	p, err := c.Pop(ctx, l, queue.PopOptions{MaxUsers: 10, Deadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Chunk.Pushes) != 1 || p.Chunk.Pushes[0].UserID != 1 {
		t.Fatalf("pop by the Redis clock = %v, want only user 1", p.Chunk.Pushes)
	}
}

func TestDueQueuesAndNext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newClient(t)
	const n = 8
	for u := int64(1); u <= 40; u++ {
		if err := c.Add(ctx, n, queue.Entry{UserID: u, TemplateID: 1, PushAt: t0.Add(time.Duration(u) * time.Second), Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	due, err := c.DueQueues(ctx, t0.Add(40*time.Second), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != n {
		t.Fatalf("due queues = %v, want all %d", due, n)
	}
	if none, _ := c.DueQueues(ctx, t0, 100); len(none) != 0 {
		t.Fatalf("due before anything = %v", none)
	}
	q := queue.Shard(1, n)
	l := lease(t, c, q)
	p := pop(t, c, l, t0.Add(time.Second))
	if err := c.SetNext(ctx, q, p.Next); err != nil {
		t.Fatal(err)
	}
	due, _ = c.DueQueues(ctx, t0.Add(time.Second), 100)
	for _, d := range due {
		if d == q {
			// Only its flight could make it due again, and that is 10 s away.
			t.Fatalf("queue %d still due after its only due user was popped: %v", q, due)
		}
	}
}

func TestConcurrentPopsUnderOneLeaseNeverDuplicate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newClient(t)
	const users = 2000
	for u := int64(1); u <= users; u++ {
		add(t, c, u, 1, t0, 1)
	}
	l := lease(t, c, 0)
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				p, err := c.Pop(ctx, l, queue.PopOptions{Now: t0, MaxUsers: 50, Deadline: time.Minute})
				if err != nil {
					t.Error(err)
					return
				}
				if len(p.Chunk.Pushes) == 0 {
					return
				}
				mu.Lock()
				for _, x := range p.Chunk.Pushes {
					seen[x.UserID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != users {
		t.Fatalf("popped %d users, want %d", len(seen), users)
	}
	for u, n := range seen {
		if n != 1 {
			t.Fatalf("user %d popped %d times", u, n)
		}
	}
}

func TestRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newClusterClient(t)
	const n = 16
	for u := int64(1); u <= 200; u++ {
		if err := c.Add(ctx, n, queue.Entry{UserID: u, TemplateID: 1, PushAt: t0, Version: 1}); err != nil {
			t.Fatalf("add on cluster: %v", err)
		}
	}
	total := 0
	for q := 0; q < n; q++ {
		l := lease(t, c, q)
		p := pop(t, c, l, t0)
		if len(p.Pushes) == 0 {
			continue
		}
		if _, err := c.Ack(ctx, l, p.Chunk); err != nil {
			t.Fatalf("ack on cluster: %v", err)
		}
		marks, err := c.Marks(ctx, q, farFuture, 1000)
		if err != nil || len(marks) != 1 || len(marks[0].Pushes) != len(p.Pushes) {
			t.Fatalf("marks q%d = %v, %v; want one chunk of %d", q, marks, err, len(p.Pushes))
		}
		if err := c.Forget(ctx, q, []queue.Chunk{marks[0].Chunk}); err != nil {
			t.Fatal(err)
		}
		total += len(p.Pushes)
	}
	if total != 200 {
		t.Fatalf("popped %d on cluster, want 200", total)
	}
}

func ExampleShard() {
	fmt.Println(queue.Shard(42, 1))
	// Output: 0
}

func TestIndexed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newClient(t)
	add(t, c, 1, 10, t0, 1)
	add(t, c, 1, 110, t0, 1)
	if err := c.Cancel(ctx, oneQueue, queue.Entry{UserID: 2, TemplateID: 10, PushAt: t0, Version: 2}); err != nil {
		t.Fatal(err)
	}
	entries := []queue.Entry{
		{UserID: 1, TemplateID: 10}, {UserID: 1, TemplateID: 110}, {UserID: 1, TemplateID: 11},
		{UserID: 1, TemplateID: 1}, {UserID: 2, TemplateID: 10}, {UserID: 3, TemplateID: 10},
	}
	got, err := c.Indexed(ctx, oneQueue, entries)
	if err != nil {
		t.Fatal(err)
	}
	want := []bool{true, true, false, false, true, false}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Indexed(%+v) = %v, want %v", entries[i], got[i], want[i])
		}
	}
}

func TestReconcileRestoresALostIndexEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, rdb := newClient(t)
	prefix := enginetest.Prefix(t)
	add(t, c, 1, 1, t0, 1) // queue 0 of 1
	// A worker died between its queue writes and its index write.
	if err := rdb.Del(ctx, prefix+":next").Err(); err != nil {
		t.Fatal(err)
	}
	if due, _ := c.DueQueues(ctx, t0, 10); len(due) != 0 {
		t.Fatalf("due = %v after losing the index", due)
	}
	if err := c.Reconcile(ctx, 1, t0); err != nil {
		t.Fatal(err)
	}
	if due, _ := c.DueQueues(ctx, t0, 10); len(due) != 1 {
		t.Fatalf("due after reconcile = %v, want [0]", due)
	}

	// Orphaned flights (no lease) are due now, not at their deadline.
	l := lease(t, c, 0)
	pop(t, c, l, t0)
	if err := rdb.Del(ctx, prefix+":next", prefix+":{"+prefix+":q0}:lease").Err(); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Second)
	if err := c.Reconcile(ctx, 1, now); err != nil {
		t.Fatal(err)
	}
	if due, _ := c.DueQueues(ctx, now, 10); len(due) != 1 {
		t.Fatalf("orphaned flight not due at once: %v", due)
	}
}

// TestAddAfterScriptFlush: the add pipeline loads its script again when
// Redis lost it (restart, SCRIPT FLUSH), instead of failing the PUT.
func TestAddAfterScriptFlush(t *testing.T) {
	t.Parallel()
	// A private server: flushing the shared one's scripts would race other tests.
	p := enginetest.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr})
	t.Cleanup(func() { rdb.Close() })
	c, err := queue.New(rdb, queue.Options{Prefix: enginetest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	add(t, c, 1, 1, t0, 1)
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	add(t, c, 2, 1, t0, 1)
	l := lease(t, c, 0)
	if got := pop(t, c, l, t0); len(got.Pushes) != 2 {
		t.Fatalf("popped %v, want users 1 and 2", got.Pushes)
	}
}

// TestTakenRecordIsNotRewritten: a pop takes a single pending reminder by
// dropping its user's due score only (see lua/prelude.lua); that entry must
// then behave exactly like an explicit F: refused by cancels and newer
// PUTs, reported as taken, kept apart from the user's later reminders, and
// dropped by its own chunk's forget, while a pending entry never is.
func TestTakenRecordIsNotRewritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, rdb := newClient(t)
	items := enginetest.Prefix(t) + ":{" + enginetest.Prefix(t) + ":q0}:items"
	l := lease(t, c, 0)
	one := queue.Layout{From: oneQueue, To: oneQueue, Span: oneQueue}
	state := func(user, tid int64) queue.EntryState {
		t.Helper()
		st, err := c.States(ctx, one, []queue.Entry{{UserID: user, TemplateID: tid}})
		if err != nil {
			t.Fatal(err)
		}
		return st[0]
	}

	add(t, c, 7, 1, t0, 1)
	written, err := rdb.HGet(ctx, items, "7").Result()
	if err != nil {
		t.Fatal(err)
	}
	taken := pop(t, c, l, t0)
	if len(taken.Pushes) != 1 {
		t.Fatalf("pop = %v", taken.Pushes)
	}
	if rec, _ := rdb.HGet(ctx, items, "7").Result(); rec != written {
		t.Fatalf("record rewritten by the pop: %q, was %q", rec, written)
	}
	if got := state(7, 1); got != queue.StateTaken {
		t.Fatalf("state after pop = %v, want taken", got)
	}
	if es, _, err := c.UserRecord(ctx, 0, 7); err != nil || len(es) != 1 || es[0].State != queue.StateTaken {
		t.Fatalf("user record after pop = %+v, %v; want one taken entry", es, err)
	}
	for name, err := range map[string]error{
		"cancel":    c.Cancel(ctx, oneQueue, queue.Entry{UserID: 7, TemplateID: 1, PushAt: t0, Version: 2}),
		"newer add": c.Add(ctx, oneQueue, queue.Entry{UserID: 7, TemplateID: 1, PushAt: t0.Add(time.Minute), Version: 2}),
	} {
		if !errors.Is(err, queue.ErrInFlight) {
			t.Fatalf("%s of a taken reminder: %v, want ErrInFlight", name, err)
		}
	}
	add(t, c, 7, 1, t0, 1) // a retried PUT: unchanged

	// A later reminder of the same user makes the taken entry explicit.
	add(t, c, 7, 2, t0.Add(time.Hour), 1)
	if a, b := state(7, 1), state(7, 2); a != queue.StateTaken || b != queue.StatePending {
		t.Fatalf("states after a second add = %v, %v; want taken, pending", a, b)
	}
	if again := pop(t, c, l, t0.Add(time.Minute)); len(again.Pushes) != 0 {
		t.Fatalf("taken reminder popped again: %v", again.Pushes)
	}

	// Forget drops the taken entry of its chunk and nothing pending, even
	// a pending entry that a forged chunk names.
	add(t, c, 8, 1, t0.Add(2*time.Hour), 1)
	forged, err := queue.ParseChunk("8|1:" + strconv.FormatInt(t0.Add(2*time.Hour).UnixMilli(), 10))
	if err != nil {
		t.Fatal(err)
	}
	marks := enginetest.Prefix(t) + ":{" + enginetest.Prefix(t) + ":q0}:marks"
	if err := rdb.ZAdd(ctx, marks, redis.Z{Score: 1, Member: forged.String()}).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ack(ctx, l, taken.Chunk); err != nil {
		t.Fatal(err)
	}
	if err := c.Forget(ctx, 0, []queue.Chunk{taken.Chunk, forged}); err != nil {
		t.Fatal(err)
	}
	if a, b, p := state(7, 1), state(7, 2), state(8, 1); a != 0 || b != queue.StatePending || p != queue.StatePending {
		t.Fatalf("states after forget = %v, %v, %v; want none, pending, pending", a, b, p)
	}
	later := pop(t, c, l, t0.Add(3*time.Hour))
	if len(later.Pushes) != 2 {
		t.Fatalf("pop after forget = %v, want users 7 and 8 once each", later.Pushes)
	}
}
