package queue_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/enginetest"
	"couponpush/queue"
)

const ahead = 5 * time.Second

func newAheadClient(t *testing.T, rdb redis.UniversalClient, o queue.Options) *queue.Client {
	t.Helper()
	o.Prefix, o.PrepareAhead = enginetest.Prefix(t), ahead
	c, err := queue.New(rdb, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func prepare(t *testing.T, c *queue.Client, l *queue.Lease, now time.Time) queue.Prepared {
	t.Helper()
	p, err := c.Prepare(context.Background(), l, queue.PrepareOptions{
		PopOptions: queue.PopOptions{Now: now, MergeWindow: 10 * time.Second, MaxUsers: 1000, Deadline: 10 * time.Second}})
	if err != nil {
		t.Fatalf("prepare at %v: %v", now, err)
	}
	return p
}

func begin(t *testing.T, c *queue.Client, l *queue.Lease, now time.Time) []queue.Begun {
	t.Helper()
	b, err := c.Begin(context.Background(), l, queue.BeginOptions{Now: now, Deadline: 10 * time.Second, Max: 16})
	if err != nil {
		t.Fatalf("begin at %v: %v", now, err)
	}
	// A sealed chunk comes unparsed (its publish needs only its messages
	// and stored form); the tests read its pushes, so it is parsed here.
	for i := range b {
		ch := b[i].Chunk
		if sealed := b[i].Encoded != nil; ch.Parsed() == sealed {
			t.Fatalf("begun chunk %s: sealed %v, parsed %v; want parsed only when not sealed", b[i].ID, sealed, ch.Parsed())
		}
		if b[i].Chunk, err = ch.Parse(); err != nil {
			t.Fatalf("begun chunk %s: %v", b[i].ID, err)
		}
		if n := b[i].Chunk.Len(); n != ch.Len() || n != len(b[i].Chunk.Pushes) || n == 0 {
			t.Fatalf("begun chunk %s: %d pushes unparsed, %d parsed (%d)", b[i].ID, ch.Len(), n, len(b[i].Chunk.Pushes))
		}
		if b[i].Chunk.String() != ch.String() {
			t.Fatalf("begun chunk %s: stored form changed by parsing", b[i].ID)
		}
	}
	return b
}

func users(ch queue.Chunk) []int64 {
	var out []int64
	for _, p := range ch.Pushes {
		out = append(out, p.UserID)
	}
	slices.Sort(out)
	return out
}

// TestPrepareBeginAck: work due at t0 is taken PrepareAhead early into a
// ready chunk, fixed like a pop's (nothing left to pop), begun only once
// its publish time has come, with its seal, and then acked and forgotten
// like a popped chunk, leaving nothing held.
func TestPrepareBeginAck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := enginetest.Redis(t)
	c := newAheadClient(t, rdb, queue.Options{})
	l := lease(t, c, 0)
	for u := int64(1); u <= 3; u++ {
		add(t, c, u, 9, t0, 1)
	}
	if p := prepare(t, c, l, t0.Add(-ahead-time.Millisecond)); p.ID != "" {
		t.Fatalf("prepared %v before the horizon", p.Chunk.Pushes)
	}
	p := prepare(t, c, l, t0.Add(-3*time.Second))
	if p.ID == "" || !slices.Equal(users(p.Chunk), []int64{1, 2, 3}) || !p.PublishAt.Equal(t0) {
		t.Fatalf("prepared %+v; want users 1-3 publishing at %v", p, t0)
	}
	if again := prepare(t, c, l, t0.Add(-3*time.Second)); again.ID != "" {
		t.Fatalf("prepared the same work twice: %v", again.Chunk.Pushes)
	}
	if got := pop(t, c, l, t0.Add(time.Hour)); len(got.Pushes) != 0 {
		t.Fatalf("popped prepared work: %v", got.Pushes)
	}
	if ok, err := c.Seal(ctx, l, p.ID, []byte("sealed")); err != nil || !ok {
		t.Fatalf("seal = %v, %v", ok, err)
	}
	if b := begin(t, c, l, t0.Add(-time.Millisecond)); len(b) != 0 {
		t.Fatalf("begun a millisecond early: %v", b)
	}
	b := begin(t, c, l, t0)
	if len(b) != 1 || b[0].ID != p.ID || b[0].Chunk.String() != p.Chunk.String() || string(b[0].Encoded) != "sealed" {
		t.Fatalf("begun %+v; want chunk %s as prepared, with its seal", b, p.ID)
	}
	if again := begin(t, c, l, t0.Add(time.Hour)); len(again) != 0 {
		t.Fatalf("begun twice: %v", again)
	}
	if ok, err := c.Seal(ctx, l, p.ID, []byte("late")); err != nil || ok {
		t.Fatalf("seal after begin = %v, %v; want refused", ok, err)
	}
	if err := c.Cancel(ctx, oneQueue, queue.Entry{UserID: 2, TemplateID: 9, PushAt: t0, Version: 2}); !errors.Is(err, queue.ErrInFlight) {
		t.Fatalf("cancel after begin = %v; want ErrInFlight", err)
	}
	if ok, err := c.Ack(ctx, l, b[0].Chunk); err != nil || !ok {
		t.Fatalf("ack = %v, %v", ok, err)
	}
	marks, err := c.Marks(ctx, 0, farFuture, 10)
	if err != nil || len(marks) != 1 {
		t.Fatalf("marks = %v, %v", marks, err)
	}
	if err := c.Forget(ctx, 0, []queue.Chunk{marks[0].Chunk}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"held", "prep", "ready", "items", "flight"} {
		key := enginetest.Prefix(t) + ":{" + enginetest.Prefix(t) + ":q0}:" + k
		n, err := rdb.Exists(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 && k != "prep" { // prep keeps its id counter
			t.Errorf("%s left behind", k)
		}
	}
}

// TestCancelWithdrawsPreparedWork: a cancel of an item whose chunk has not
// begun succeeds and the item is never handed out; the chunk loses its seal
// (its pushes changed) and its other pushes are untouched; a chunk whose
// every item was cancelled is gone. A cancel after begin is refused.
func TestCancelWithdrawsPreparedWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newAheadClient(t, enginetest.Redis(t), queue.Options{})
	l := lease(t, c, 0)
	add(t, c, 1, 7, t0, 1)
	add(t, c, 1, 8, t0.Add(time.Second), 1) // merged with user 1's first
	add(t, c, 2, 7, t0, 1)
	p := prepare(t, c, l, t0.Add(-time.Second))
	if len(p.Chunk.Pushes) != 2 {
		t.Fatalf("prepared %v", p.Chunk.Pushes)
	}
	if ok, err := c.Seal(ctx, l, p.ID, []byte("sealed")); err != nil || !ok {
		t.Fatalf("seal = %v, %v", ok, err)
	}
	if err := c.Cancel(ctx, oneQueue, queue.Entry{UserID: 1, TemplateID: 7, PushAt: t0, Version: 2}); err != nil {
		t.Fatalf("cancel of a prepared item: %v", err)
	}
	if ok, err := c.Seal(ctx, l, p.ID, []byte("again")); err != nil || ok {
		t.Fatalf("seal after a withdrawal = %v, %v; want refused", ok, err)
	}
	b := begin(t, c, l, t0)
	if len(b) != 1 || b[0].Encoded != nil {
		t.Fatalf("begun %+v; want one chunk without a seal", b)
	}
	want := "1|8:" + itoa(t0.Add(time.Second).UnixMilli()) + "\n2|7:" + itoa(t0.UnixMilli())
	if b[0].Chunk.String() != want {
		t.Fatalf("begun chunk %q; want %q", b[0].Chunk.String(), want)
	}
	if got := pop(t, c, l, t0.Add(time.Hour)); len(got.Pushes) != 0 {
		t.Fatalf("the cancelled item came back: %v", got.Pushes)
	}

	// Every item of a chunk cancelled: the chunk is gone.
	add(t, c, 3, 7, t0.Add(time.Minute), 1)
	p = prepare(t, c, l, t0.Add(time.Minute-time.Second))
	if len(p.Chunk.Pushes) != 1 {
		t.Fatalf("prepared %v", p.Chunk.Pushes)
	}
	if err := c.Cancel(ctx, oneQueue, queue.Entry{UserID: 3, TemplateID: 7, PushAt: t0.Add(time.Minute), Version: 2}); err != nil {
		t.Fatal(err)
	}
	if b := begin(t, c, l, t0.Add(time.Hour)); len(b) != 0 {
		t.Fatalf("begun %v; want the emptied chunk gone", b)
	}
	// A resubscribe after it is pending again, and pushed.
	add(t, c, 3, 7, t0.Add(time.Minute), 3)
	if got := pop(t, c, l, t0.Add(time.Hour)); len(got.Pushes) != 1 || got.Pushes[0].UserID != 3 {
		t.Fatalf("popped %v; want user 3's resubscribed reminder", got.Pushes)
	}
}

// TestAddBesidePreparedWork: a reminder added for a user whose push is
// prepared is pushed on its own, never lost; a repeated add of the
// prepared one changes nothing.
func TestAddBesidePreparedWork(t *testing.T) {
	t.Parallel()
	c := newAheadClient(t, enginetest.Redis(t), queue.Options{})
	l := lease(t, c, 0)
	add(t, c, 1, 7, t0, 1)
	if p := prepare(t, c, l, t0.Add(-time.Second)); len(p.Chunk.Pushes) != 1 {
		t.Fatalf("prepared %v", p.Chunk.Pushes)
	}
	add(t, c, 1, 8, t0, 1)
	if err := c.Add(context.Background(), oneQueue, queue.Entry{UserID: 1, TemplateID: 7, PushAt: t0, Version: 1}); err != nil {
		t.Fatalf("repeated add of the prepared item: %v", err)
	}
	got := pop(t, c, l, t0)
	if len(got.Pushes) != 1 || len(got.Pushes[0].Items) != 1 || got.Pushes[0].Items[0].TemplateID != 8 {
		t.Fatalf("popped %v; want user 1's new item alone", got.Pushes)
	}
	if b := begin(t, c, l, t0); len(b) != 1 || b[0].Chunk.Pushes[0].Items[0].TemplateID != 7 {
		t.Fatalf("begun %v; want the prepared item", b)
	}
}

// TestPreparedWorkIsBounded: a queue holds at most MaxReady ready chunks,
// and while it is full the next-work index names its due time, not
// PrepareAhead before it (no worker spins on a queue it cannot prepare).
func TestPreparedWorkIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newAheadClient(t, enginetest.Redis(t), queue.Options{MaxReady: 2})
	l := lease(t, c, 0)
	for i := range 3 {
		add(t, c, int64(i+1), 7, t0.Add(time.Duration(i)*time.Second), 1) // a chunk each
	}
	now := t0.Add(-time.Second)
	var ids []string
	for range 3 {
		if p := prepare(t, c, l, now); p.ID != "" {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) != 2 {
		t.Fatalf("prepared %d chunks; want MaxReady 2", len(ids))
	}
	p := prepare(t, c, l, now)
	if !p.Next.Equal(t0) {
		t.Fatalf("next = %v; want the first ready chunk at %v", p.Next, t0)
	}
	if err := c.SetNext(ctx, 0, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if due, err := c.DueQueues(ctx, t0.Add(-time.Millisecond), 10); err != nil || len(due) != 0 {
		t.Fatalf("due queues before the first chunk's time = %v, %v; want none", due, err)
	}
	begin(t, c, l, t0)
	if p := prepare(t, c, l, now); p.ID == "" {
		t.Fatal("nothing prepared once a chunk had begun")
	}
}

// TestNextNamesAQueueAhead: an add makes its queue due PrepareAhead before
// its push time, so a scheduler comes to prepare it; once prepared, the
// queue is due at the chunk's publish time; Reconcile agrees.
func TestNextNamesAQueueAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newAheadClient(t, enginetest.Redis(t), queue.Options{})
	add(t, c, 1, 7, t0, 1)
	due := func(at time.Time) bool {
		t.Helper()
		qs, err := c.DueQueues(ctx, at, 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(qs) == 1
	}
	if due(t0.Add(-ahead-time.Millisecond)) || !due(t0.Add(-ahead)) {
		t.Fatalf("queue not due exactly PrepareAhead before its push")
	}
	l := lease(t, c, 0)
	p := prepare(t, c, l, t0.Add(-ahead))
	if err := c.SetNext(ctx, 0, p.Next); err != nil {
		t.Fatal(err)
	}
	if due(t0.Add(-time.Millisecond)) || !due(t0) {
		t.Fatalf("prepared queue not due exactly at its publish time")
	}
	if err := c.Reconcile(ctx, 1, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if due(t0.Add(-time.Millisecond)) {
		t.Fatalf("Reconcile made the prepared queue due early")
	}
}

// TestBeginWaitsForTheRedisClock: whatever the caller's clock says, a
// chunk begins only once the Redis server's clock reaches its publish time.
func TestBeginWaitsForTheRedisClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newAheadClient(t, enginetest.Redis(t), queue.Options{})
	now, err := c.Time(ctx)
	if err != nil {
		t.Fatal(err)
	}
	at := now.Add(1500 * time.Millisecond)
	add(t, c, 1, 7, at, 1)
	l := lease(t, c, 0)
	if p := prepare(t, c, l, time.Time{}); p.ID == "" {
		t.Fatal("nothing prepared by the Redis clock")
	}
	if b := begin(t, c, l, time.Time{}); len(b) != 0 {
		t.Fatalf("begun %v before its time by the Redis clock", b)
	}
	enginetest.Eventually(t, "the chunk begun at its time", 10*time.Second, func() bool {
		b := begin(t, c, l, time.Time{})
		if len(b) == 0 {
			return false
		}
		rt, err := c.Time(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rt.Before(at) {
			t.Fatalf("begun at Redis time %v, before its publish time %v", rt, at)
		}
		return true
	})
}

// TestPreparedWorkOnRedisCluster: prepare, seal, cancel, begin and forget
// each touch one queue's slot, on a real Redis Cluster.
func TestPreparedWorkOnRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newAheadClient(t, clusterRedis(t), queue.Options{})
	const n = 8
	for u := int64(1); u <= 100; u++ {
		if err := c.Add(ctx, n, queue.Entry{UserID: u, TemplateID: 1, PushAt: t0, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Cancel(ctx, n, queue.Entry{UserID: 50, TemplateID: 1, PushAt: t0, Version: 2}); err != nil {
		t.Fatal(err)
	}
	total := 0
	for q := range n {
		l := lease(t, c, q)
		p, err := c.Prepare(ctx, l, queue.PrepareOptions{PopOptions: queue.PopOptions{Now: t0.Add(-time.Second), MergeWindow: time.Second, MaxUsers: 1000, Deadline: time.Minute}})
		if err != nil {
			t.Fatalf("prepare q%d on cluster: %v", q, err)
		}
		if p.ID == "" {
			continue
		}
		if _, err := c.Seal(ctx, l, p.ID, []byte("x")); err != nil {
			t.Fatalf("seal q%d on cluster: %v", q, err)
		}
		withdrawn := 0
		if u := p.Chunk.Pushes[0].UserID; u != 50 {
			if err := c.Cancel(ctx, n, queue.Entry{UserID: u, TemplateID: 1, PushAt: t0, Version: 2}); err != nil {
				t.Fatalf("cancel of prepared user %d on cluster: %v", u, err)
			}
			withdrawn = 1
		}
		b := begin(t, c, l, t0)
		if len(p.Chunk.Pushes) == withdrawn {
			continue
		}
		if len(b) != 1 || len(b[0].Chunk.Pushes) != len(p.Chunk.Pushes)-withdrawn {
			t.Fatalf("begun on q%d: %+v; want %d pushes", q, b, len(p.Chunk.Pushes)-withdrawn)
		}
		if _, err := c.Ack(ctx, l, b[0].Chunk); err != nil {
			t.Fatal(err)
		}
		if err := c.Forget(ctx, q, []queue.Chunk{b[0].Chunk}); err != nil {
			t.Fatal(err)
		}
		total += len(b[0].Chunk.Pushes) + withdrawn
	}
	if total != 99 {
		t.Fatalf("prepared %d on cluster; want the 99 not cancelled", total)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestMoveWithdrawsPreparedWork: when N changes, a move takes work that
// was only prepared back out of its ready chunk, so it moves pending and
// is pushed once from its new queue; work begun before the move stays
// taken; nothing is prepared while the move runs.
func TestMoveWithdrawsPreparedWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newAheadClient(t, enginetest.Redis(t), queue.Options{})
	if _, err := c.InitLayout(ctx, 2); err != nil {
		t.Fatal(err)
	}
	r := c.NewRouter(func() int { return 2 })
	const users = 60
	for u := int64(1); u <= users; u++ {
		if err := r.Add(ctx, queue.Entry{UserID: u, TemplateID: 1, PushAt: t0, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// Queue 0's work prepared and begun (taken), queue 1's only prepared.
	l0, l1 := lease(t, c, 0), lease(t, c, 1)
	p0, p1 := prepare(t, c, l0, t0.Add(-time.Second)), prepare(t, c, l1, t0.Add(-time.Second))
	if len(p0.Chunk.Pushes)+len(p1.Chunk.Pushes) != users {
		t.Fatalf("prepared %d + %d of %d", len(p0.Chunk.Pushes), len(p1.Chunk.Pushes), users)
	}
	b0 := begin(t, c, l0, t0)
	if len(b0) != 1 {
		t.Fatalf("begun %v", b0)
	}

	st, _, err := c.LayoutStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lay, err := c.BeginMove(ctx, st.Layout, 5)
	if err != nil {
		t.Fatal(err)
	}
	leases := []*queue.Lease{l0, l1, lease(t, c, 2), lease(t, c, 3), lease(t, c, 4)}
	add3 := queue.Entry{UserID: 1000, TemplateID: 1, PushAt: t0, Version: 1}
	if err := r.Add(ctx, add3); err != nil {
		t.Fatal(err)
	}
	for q := range 5 {
		l := leases[q]
		if p := prepare(t, c, l, t0.Add(-time.Second)); p.ID != "" {
			t.Fatalf("prepared on queue %d during a move: %v", q, p.Chunk.Pushes)
		}
	}
	for q := 0; q < lay.From; q++ {
		if _, err := c.MoveQueue(ctx, lay, q, 7); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.FinishMove(ctx, lay); err != nil {
		t.Fatal(err)
	}
	// Every user of queue 1's prepared chunk is pushed once: from it if
	// the user stayed, from its new home if moved; queue 0's begun work is
	// not pushed again.
	seen := map[int64]int{}
	for _, p := range b0[0].Chunk.Pushes {
		seen[p.UserID]++
	}
	for _, b := range begin(t, c, l1, t0.Add(time.Hour)) {
		for _, p := range b.Chunk.Pushes {
			if queue.Shard(p.UserID, 5) != 1 {
				t.Errorf("user %d moved to queue %d, yet still pushed from queue 1's prepared chunk", p.UserID, queue.Shard(p.UserID, 5))
			}
			seen[p.UserID]++
		}
	}
	for q := range 5 {
		l := leases[q]
		for _, p := range pop(t, c, l, t0.Add(time.Hour)).Pushes {
			seen[p.UserID]++
		}
	}
	for u := int64(1); u <= users; u++ {
		if seen[u] != 1 {
			t.Errorf("user %d pushed %d times", u, seen[u])
		}
	}
	if seen[1000] != 1 {
		t.Errorf("the user added during the move pushed %d times", seen[1000])
	}
}

// TestTombstoneDoesNotHoldUpPreparing: a tombstone whose time is up within
// the horizon is dropped by a prepare (not left to block it until its
// time), and the work behind it is prepared on the next call.
func TestTombstoneDoesNotHoldUpPreparing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newAheadClient(t, enginetest.Redis(t), queue.Options{TombstoneTTL: time.Minute})
	l := lease(t, c, 0)
	// User 1's tombstone expires at t0+2s; user 2 is due at t0+3s.
	if err := c.Cancel(ctx, oneQueue, queue.Entry{UserID: 1, TemplateID: 7, PushAt: t0.Add(2*time.Second - time.Minute), Version: 2}); err != nil {
		t.Fatal(err)
	}
	add(t, c, 2, 7, t0.Add(3*time.Second), 1)
	var got []int64
	for range 3 {
		if p := prepare(t, c, l, t0); p.ID != "" {
			got = append(got, users(p.Chunk)...)
		}
	}
	if !slices.Equal(got, []int64{2}) {
		t.Fatalf("prepared users %v; want user 2 behind the tombstone", got)
	}
}
