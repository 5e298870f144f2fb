package queue_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/enginetest"
	"couponpush/queue"
)

// records reads every user record of queues 0..span-1 (and their moving
// hashes): user → queue → record, with implicit taken entries written F.
func records(t *testing.T, rdb redis.UniversalClient, prefix string, span int) (map[string]map[int]string, int) {
	t.Helper()
	ctx := context.Background()
	out := map[string]map[int]string{}
	transit := 0
	for q := 0; q < span; q++ {
		tag := fmt.Sprintf("%s:{%s:q%d}:", prefix, prefix, q)
		m, err := rdb.HGetAll(ctx, tag+"items").Result()
		if err != nil {
			t.Fatal(err)
		}
		scored, err := rdb.ZRange(ctx, tag+"due", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		due := map[string]bool{}
		for _, u := range scored {
			due[u] = true
		}
		for u, rec := range m {
			if out[u] == nil {
				out[u] = map[int]string{}
			}
			if !due[u] {
				rec = strings.ReplaceAll(rec, ",P;", ",F;") // taken by a pop: see lua/prelude.lua
			}
			out[u][q] = rec
		}
		n, err := rdb.HLen(ctx, tag+"moving").Result()
		if err != nil {
			t.Fatal(err)
		}
		transit += int(n)
	}
	return out, transit
}

// move runs a whole change of N as the coordinator does.
func move(t *testing.T, c *queue.Client, to int) queue.Layout {
	t.Helper()
	ctx := context.Background()
	st, ok, err := c.LayoutStatus(ctx)
	if err != nil || !ok {
		t.Fatalf("layout: ok=%v err=%v", ok, err)
	}
	l, err := c.BeginMove(ctx, st.Layout, to)
	if err != nil {
		t.Fatal(err)
	}
	for q := 0; q < l.From; q++ {
		if _, err := c.MoveQueue(ctx, l, q, 7); err != nil {
			t.Fatal(err)
		}
	}
	done, err := c.FinishMove(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	return done
}

func TestMoveTakesEveryRecordToItsNewQueue(t *testing.T) {
	ctx := context.Background()
	c, rdb := newClient(t)
	prefix := enginetest.Prefix(t)
	if _, err := c.InitLayout(ctx, 8); err != nil {
		t.Fatal(err)
	}
	r := c.NewRouter(func() int { return 8 })
	const users = 300
	for u := int64(1); u <= users; u++ {
		for tid := int64(1); tid <= 1+u%3; tid++ {
			e := queue.Entry{UserID: u, TemplateID: tid, PushAt: t0.Add(time.Duration(tid) * time.Second), Version: 1}
			if err := r.Add(ctx, e); err != nil {
				t.Fatal(err)
			}
			if u%10 == 0 && tid == 1 {
				e.Version = 2
				if err := r.Cancel(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// Take the first reminder of every user in queue 0 (F entries), and
	// ack the chunk: it waits for its sent-mark in queue 0.
	l := lease(t, c, 0)
	p := pop(t, c, l, t0.Add(time.Second))
	if len(p.Pushes) == 0 {
		t.Fatal("nothing popped from queue 0")
	}
	if _, err := c.Ack(ctx, l, p.Chunk); err != nil {
		t.Fatal(err)
	}
	before, _ := records(t, rdb, prefix, 8)

	after := move(t, c, 12)
	if after.From != 12 || after.To != 12 || after.Span != 12 {
		t.Fatalf("layout after the move: %+v", after)
	}
	got, transit := records(t, rdb, prefix, 12)
	if transit != 0 {
		t.Fatalf("%d users left in transit", transit)
	}
	if len(got) != len(before) {
		t.Fatalf("%d users before the move, %d after", len(before), len(got))
	}
	for u, qs := range got {
		uid, _ := strconv.ParseInt(u, 10, 64)
		home := queue.Shard(uid, 12)
		if len(qs) != 1 || qs[home] == "" {
			t.Fatalf("user %s in queues %v, want only %d", u, qs, home)
		}
		var old string
		for _, rec := range before[u] {
			old = rec
		}
		if queue.Shard(uid, 8) != home {
			old = strings.ReplaceAll(old, ",F;", ",S;") // forgotten in the old queue, not here
		}
		if qs[home] != old {
			t.Fatalf("user %s: record %q after the move, %q before", u, qs[home], old)
		}
	}
	// A reminder taken before the move cannot be cancelled or re-added after it.
	for _, push := range p.Pushes {
		e := queue.Entry{UserID: push.UserID, TemplateID: push.Items[0].TemplateID, PushAt: push.Items[0].PushAt, Version: 5}
		r2 := c.NewRouter(func() int { return 8 }) // remembers nothing: learns the layout from Redis
		if err := r2.Cancel(ctx, e); !errors.Is(err, queue.ErrInFlight) {
			t.Fatalf("cancel of a reminder taken before the move: %v, want ErrInFlight", err)
		}
	}
	// Its chunk is forgotten in queue 0 without harm.
	marks, err := c.Marks(ctx, 0, farFuture, 10)
	if err != nil || len(marks) != 1 {
		t.Fatalf("marks of queue 0: %v %v", marks, err)
	}
	if err := c.Forget(ctx, 0, []queue.Chunk{marks[0].Chunk}); err != nil {
		t.Fatal(err)
	}
	// A writer that still believes in 8 queues is told, and lands right.
	stale := c.NewRouter(func() int { return 8 })
	if _, err := stale.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	move(t, c, 3)
	e := queue.Entry{UserID: 100_001, TemplateID: 9, PushAt: t0, Version: 1}
	if err := stale.Add(ctx, e); err != nil {
		t.Fatal(err)
	}
	if got, _ := stale.Layout(ctx); got.To != 3 {
		t.Fatalf("router layout after a stale write: %+v, want 3 queues", got)
	}
	got, _ = records(t, rdb, prefix, 12)
	if qs := got["100001"]; len(qs) != 1 || qs[queue.Shard(100_001, 3)] == "" {
		t.Fatalf("user 100001 in %v, want queue %d", qs, queue.Shard(100_001, 3))
	}
	// Queues 3..11 drain; then the span shrinks.
	st, _, err := c.LayoutStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Retire(ctx, st.Layout); err != nil || !ok {
		t.Fatalf("retire after the move to 3: ok=%v err=%v", ok, err)
	}
	if st, _, _ = c.LayoutStatus(ctx); st.Span != 3 || st.Moved == 0 || st.Total == 0 {
		t.Fatalf("layout after retiring: %+v", st)
	}
}

// TestMoveUnderConcurrentWrites changes N 8 → 12 → 3 → 16 while writers add,
// re-add and cancel through routers that learn each layout only from the
// queues' answers: every (user, template) ends in exactly one queue, its
// user's home, at the last version written, and a user's reminders are
// never split over two queues.
func TestMoveUnderConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	c, rdb := newClient(t)
	prefix := enginetest.Prefix(t)
	if _, err := c.InitLayout(ctx, 8); err != nil {
		t.Fatal(err)
	}
	const users, templates = 400, 3
	type key struct{ u, tid int64 }
	type last struct {
		ver   int64
		state byte
	}
	var mu sync.Mutex
	want := map[key]last{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			r := c.NewRouter(func() int { return 8 })
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			ver := map[key]int64{}
			// Each writer owns the users ≡ w mod 4, so versions per pair are its own.
			for i := 0; !stop.Load() || i < 2000; i++ {
				u := int64(4*rng.IntN(users/4) + w + 1)
				k := key{u, int64(1 + rng.IntN(templates))}
				ver[k]++
				e := queue.Entry{UserID: k.u, TemplateID: k.tid, PushAt: t0.Add(time.Hour), Version: ver[k]}
				var err error
				state := byte('P')
				if rng.IntN(3) == 0 {
					state = 'C'
					err = r.Cancel(ctx, e)
				} else {
					err = r.Add(ctx, e)
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				want[k] = last{ver[k], state}
				mu.Unlock()
			}
		})
	}
	for _, n := range []int{12, 3, 16} {
		move(t, c, n)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, transit := records(t, rdb, prefix, 16)
	if transit != 0 {
		t.Fatalf("%d users left in transit", transit)
	}
	seen := 0
	for u, qs := range got {
		uid, _ := strconv.ParseInt(u, 10, 64)
		if len(qs) != 1 || qs[queue.Shard(uid, 16)] == "" {
			t.Fatalf("user %s in queues %v, want only %d", u, qs, queue.Shard(uid, 16))
		}
		for _, ent := range strings.Split(strings.TrimSuffix(qs[queue.Shard(uid, 16)], ";"), ";") {
			f := strings.Split(ent, ",")
			tid, _ := strconv.ParseInt(f[0], 10, 64)
			ver, _ := strconv.ParseInt(f[2], 10, 64)
			w := want[key{uid, tid}]
			if w.ver != ver || w.state != f[3][0] {
				t.Fatalf("user %d template %d: %s in Redis, last write was version %d state %c", uid, tid, ent, w.ver, w.state)
			}
			seen++
		}
	}
	if seen != len(want) {
		t.Fatalf("%d entries in Redis, %d pairs written", seen, len(want))
	}
}

// TestMoveOnRedisCluster: moving users between queues on different slots
// of a real Redis Cluster keeps every record, each in its new queue.
func TestMoveOnRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, rdb := newClusterClient(t)
	if _, err := c.InitLayout(ctx, 4); err != nil {
		t.Fatal(err)
	}
	r := c.NewRouter(func() int { return 4 })
	for u := int64(1); u <= 300; u++ {
		if err := r.Add(ctx, queue.Entry{UserID: u, TemplateID: 1, PushAt: t0, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	move(t, c, 9)
	stale := c.NewRouter(func() int { return 4 }) // learns 9 from the queues
	for u := int64(1); u <= 300; u += 3 {
		if err := stale.Cancel(ctx, queue.Entry{UserID: u, TemplateID: 1, PushAt: t0, Version: 2}); err != nil {
			t.Fatal(err)
		}
	}
	got, transit := records(t, rdb, enginetest.Prefix(t), 9)
	if transit != 0 || len(got) != 300 {
		t.Fatalf("%d users in queues, %d in transit; want 300 and 0", len(got), transit)
	}
	for u, qs := range got {
		uid, _ := strconv.ParseInt(u, 10, 64)
		rec := qs[queue.Shard(uid, 9)]
		want := fmt.Sprintf("1,%d,1,P;", t0.UnixMilli())
		if uid%3 == 1 {
			want = fmt.Sprintf("1,%d,2,C;", t0.UnixMilli())
		}
		if len(qs) != 1 || rec != want {
			t.Fatalf("user %s: %v, want only %q in queue %d", u, qs, want, queue.Shard(uid, 9))
		}
	}
}
