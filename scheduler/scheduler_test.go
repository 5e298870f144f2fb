package scheduler_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"couponpush/balance"
	"couponpush/internal/enginetest"
	"couponpush/internal/pushtest"
	"couponpush/push"
	"couponpush/queue"
	"couponpush/scheduler"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

// grabStarts is a fixed template table (templates' own store is tested elsewhere).
type grabStarts struct{ lead time.Duration }

func (g grabStarts) GrabStart(_ context.Context, _ int64) (time.Time, error) {
	return time.Unix(0, 0).Add(g.lead), nil
}

// marks records what the scheduler reports as sent.
type marks struct {
	mu    sync.Mutex
	rows  map[pushtest.Pair]string
	first time.Time // when the first mark arrived
}

func (m *marks) MarkSent(_ context.Context, sent []scheduler.Sent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.first.IsZero() {
		m.first = time.Now()
	}
	for _, s := range sent {
		m.rows[pushtest.Pair{UserID: s.UserID, TemplateID: s.TemplateID}] = s.PushID
	}
	return nil
}

func (m *marks) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rows)
}

type cluster struct {
	idx    *queue.Client
	topic  string
	nsqd   string
	prefix string
	marks  *marks
	ahead  time.Duration // work prepared this long before due (0: none)
}

func newCluster(t *testing.T) *cluster {
	prefix := enginetest.Prefix(t)
	tcp, _ := enginetest.NSQD(t)
	idx, err := queue.New(enginetest.Redis(t), queue.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{
		idx:    idx,
		topic:  prefix,
		nsqd:   tcp,
		prefix: prefix,
		marks:  &marks{rows: map[pushtest.Pair]string{}},
	}
}

// collector consumes the cluster's topic until the test ends.
func (c *cluster) collector(t *testing.T) *pushtest.Collector {
	t.Helper()
	col, err := pushtest.NewCollector(c.nsqd, c.topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(col.Stop)
	return col
}

// start runs one scheduler as a worker process would, until the test ends.
func (c *cluster) start(t *testing.T, n int, cfg scheduler.Config) *scheduler.Scheduler {
	t.Helper()
	rdb := enginetest.Redis(t)
	idx, err := queue.New(rdb, queue.Options{Prefix: c.prefix, PrepareAhead: c.ahead})
	if err != nil {
		t.Fatal(err)
	}
	cfg.PrepareAhead = c.ahead
	bal, err := balance.New(rdb, idx, balance.Config{Prefix: c.prefix, Lease: 2 * time.Second, RenewEvery: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := push.NewPublisher(push.PublisherConfig{NSQDAddr: c.nsqd, Topic: c.topic})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Count = func() int { return n }
	s, err := scheduler.New(cfg, scheduler.Deps{Index: idx, Balancer: bal, Publisher: pub, Templates: grabStarts{time.Minute}, Marker: c.marks})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(); pub.Stop() })
	return s
}

// TestDeliveryInvariants proves R1-R5 with two schedulers on real Redis
// and nsqd, popping at due and preparing work ahead of due. Ahead, some
// reminders are cancelled after they were prepared: each cancel that
// succeeds is never pushed.
func TestDeliveryInvariants(t *testing.T) {
	t.Run("at due", func(t *testing.T) { deliveryInvariants(t, 0) })
	t.Run("ahead", func(t *testing.T) { deliveryInvariants(t, 5*time.Second) })
}

func deliveryInvariants(t *testing.T, ahead time.Duration) {
	// Registered first, so it runs after the schedulers' own cleanups.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	ctx := context.Background()
	c := newCluster(t)
	c.ahead = ahead
	if ahead > 0 {
		// Added as a worker adds them: each queue due PrepareAhead early.
		idx, err := queue.New(enginetest.Redis(t), queue.Options{Prefix: c.prefix, PrepareAhead: ahead})
		if err != nil {
			t.Fatal(err)
		}
		c.idx = idx
	}
	col := c.collector(t)

	const n, users = 8, 3000
	now, err := c.idx.Time(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Ahead, the work falls due PrepareAhead later than at due, so that it
	// is still ahead when the schedulers start: adding 3,000 users took
	// over 2 s under -race in CI, and a burst all due by then is all popped
	// at due, nothing prepared.
	base := now.Add(1500*time.Millisecond + ahead).Truncate(time.Millisecond)
	type want struct{ at time.Time }
	wanted := map[pushtest.Pair]want{}
	cancelled := map[pushtest.Pair]bool{}
	for u := int64(1); u <= users; u++ {
		at := base.Add(time.Duration(u%7) * 100 * time.Millisecond)
		items := []struct {
			tid int64
			at  time.Time
		}{{1, at}}
		switch u % 4 {
		case 1: // a second reminder inside the merge window: merged into one push
			items = append(items, struct {
				tid int64
				at  time.Time
			}{2, at.Add(400 * time.Millisecond)})
		case 2: // a second reminder outside the window: its own push, on time
			items = append(items, struct {
				tid int64
				at  time.Time
			}{3, at.Add(1500 * time.Millisecond)})
		}
		for _, it := range items {
			e := queue.Entry{UserID: u, TemplateID: it.tid, PushAt: it.at, Version: 1}
			if err := c.idx.Add(ctx, n, e); err != nil {
				t.Fatal(err)
			}
			k := pushtest.Pair{UserID: u, TemplateID: it.tid}
			if u%10 == 3 && it.tid == 1 {
				e.Version = 2
				if err := c.idx.Cancel(ctx, n, e); err != nil {
					t.Fatal(err)
				}
				cancelled[k] = true
				continue
			}
			wanted[k] = want{it.at}
		}
	}
	cfg := scheduler.Config{MergeWindow: time.Second, Slots: 2, PopBatch: 200}
	s1, s2 := c.start(t, n, cfg), c.start(t, n, cfg)
	if ahead > 0 {
		prepared := func() int64 { return s1.Stats().Prepared.Load() + s2.Stats().Prepared.Load() }
		enginetest.Eventually(t, "work prepared ahead", 10*time.Second, func() bool { return prepared() > 0 })
		withdrawn := 0
		for u := int64(7); u <= users; u += 10 {
			k := pushtest.Pair{UserID: u, TemplateID: 1}
			err := c.idx.Cancel(ctx, n, queue.Entry{UserID: u, TemplateID: 1, PushAt: wanted[k].at, Version: 2})
			switch {
			case err == nil:
				delete(wanted, k)
				cancelled[k] = true
				withdrawn++
			case !errors.Is(err, queue.ErrInFlight):
				t.Fatalf("cancel %v: %v", k, err)
			}
		}
		if withdrawn == 0 {
			t.Fatal("no cancel after prepare succeeded: the prepared path was not exercised")
		}
		t.Logf("%d pushes prepared ahead; %d of %d cancels after it withdrew their reminder", prepared(), withdrawn, users/10)
	}

	enginetest.Eventually(t, "every reminder delivered", 30*time.Second, func() bool {
		return pushtest.Summarise(col.All()).Unique() >= len(wanted)
	})
	enginetest.Eventually(t, "sent-marks", 10*time.Second, func() bool { return c.marks.len() >= len(wanted) })

	r := pushtest.Summarise(col.All())
	if r.Unique() != len(wanted) {
		t.Errorf("R1: %d reminders delivered, want %d", r.Unique(), len(wanted))
	}
	if r.Repeats != 0 {
		t.Errorf("R3: %d repeated deliveries with no crash", r.Repeats)
	}
	for k := range cancelled {
		if _, ok := r.Reminders[k]; ok {
			t.Errorf("R2: cancelled reminder %v was pushed", k)
		}
	}
	for _, g := range col.All() {
		first := g.Items[0].PushAt
		for _, it := range g.Items {
			k := pushtest.Pair{UserID: g.UserID, TemplateID: it.TemplateID}
			w, ok := wanted[k]
			if !ok {
				t.Fatalf("unexpected reminder %v", k)
			}
			if !it.PushAt.Equal(w.at) {
				t.Errorf("reminder %v carried push_at %v, want %v", k, it.PushAt, w.at)
			}
			if it.PushAt.Before(first) {
				first = it.PushAt
			}
			// R1: never earlier than push_at - merge window (local clock ≈ Redis clock here).
			if g.At.Before(w.at.Add(-cfg.MergeWindow - 50*time.Millisecond)) {
				t.Errorf("reminder %v arrived at %v, before %v - window", k, g.At, w.at)
			}
		}
		// R4: a merged push is due at its earliest item.
		if !g.DueAt.Equal(first) {
			t.Errorf("push %s due %v, earliest item %v", g.ID, g.DueAt, first)
		}
		// R5: the id is the deterministic function of (user, items).
		if want := push.NewPush(g.UserID, g.Items).ID; want != g.ID {
			t.Errorf("push id %s, want %s", g.ID, want)
		}
		if g.UserID%4 == 1 && !cancelled[pushtest.Pair{UserID: g.UserID, TemplateID: 1}] && len(g.Items) != 2 {
			t.Errorf("user %d: items within the window not merged: %+v", g.UserID, g.Items)
		}
	}
	for k, id := range c.marks.rows {
		if ids := r.Reminders[k]; len(ids) == 0 || ids[0] != id {
			t.Errorf("reminder %v marked sent with id %s, delivered as %v", k, id, ids)
		}
	}
}

// TestStopHandsBackAndAnotherTakesOver: a scheduler that stops mid-stream
// leaves nothing behind that a second one does not deliver.
func TestStopHandsBackAndAnotherTakesOver(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t)
	col := c.collector(t)
	const n, users = 4, 4000
	now, _ := c.idx.Time(ctx)
	for u := int64(1); u <= users; u++ {
		if err := c.idx.Add(ctx, n, queue.Entry{UserID: u, TemplateID: 9, PushAt: now.Add(time.Duration(u%2000) * time.Millisecond), Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	first := c.start(t, n, scheduler.Config{Slots: 2, PopBatch: 100})
	enginetest.Eventually(t, "first deliveries", 20*time.Second, func() bool { return len(col.All()) > 0 })
	first.Stop()
	c.start(t, n, scheduler.Config{Slots: 2, PopBatch: 100})
	enginetest.Eventually(t, "every reminder delivered", 30*time.Second, func() bool {
		return pushtest.Summarise(col.All()).Unique() == users
	})
	if r := pushtest.Summarise(col.All()); len(r.IDConflicts) != 0 {
		t.Fatalf("R5: reminders delivered under two ids: %v", r.IDConflicts[:min(5, len(r.IDConflicts))])
	}
}

// TestPauseHoldsEverythingAndResumeSendsTheBacklog: while paused nothing is
// emitted though reminders are due; on resume every one goes out once,
// earliest first within a queue.
func TestPauseHoldsEverythingAndResumeSendsTheBacklog(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t)
	col := c.collector(t)
	if err := c.idx.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	now, _ := c.idx.Time(ctx)
	const users = 500
	for u := int64(1); u <= users; u++ {
		if err := c.idx.Add(ctx, 1, queue.Entry{UserID: u, TemplateID: 1, PushAt: now.Add(-time.Duration(u) * time.Millisecond), Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	s := c.start(t, 1, scheduler.Config{Slots: 2, PopBatch: 50})
	enginetest.Eventually(t, "many idle ticks while paused", 10*time.Second, func() bool { return s.Stats().Ticks.Load() > 50 })
	if n := s.Stats().Published.Load(); n != 0 {
		t.Fatalf("published %d while paused", n)
	}
	if err := c.idx.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, "the backlog", 20*time.Second, func() bool { return pushtest.Summarise(col.All()).Unique() == users })
	got := col.All()
	if r := pushtest.Summarise(got); r.Repeats != 0 {
		t.Fatalf("%d repeats", r.Repeats)
	}
	// One queue: pops come out oldest first, 50 users at a time.
	for i := 50; i < len(got); i++ {
		if got[i].DueAt.Before(got[i-50].DueAt) {
			t.Fatalf("push %d due %v came after one due %v, more than a pop apart", i, got[i].DueAt, got[i-50].DueAt)
		}
	}
}

// TestMarksYieldToABacklog: sent-marks wait while any queue of the cluster
// has been due for longer than MarkInterval (a burst another worker is
// draining), though never longer than OrphanMarkAge/3, so that MySQL and the
// CPU serve the burst first.
func TestMarksYieldToABacklog(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t)
	const n = 2
	user := func(q int) int64 {
		for u := int64(1); ; u++ {
			if queue.Shard(u, n) == q {
				return u
			}
		}
	}
	now, err := c.idx.Time(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Queue 1 has been due for a minute, under another worker's lease.
	if err := c.idx.Add(ctx, n, queue.Entry{UserID: user(1), TemplateID: 1, PushAt: now.Add(-time.Minute), Version: 1}); err != nil {
		t.Fatal(err)
	}
	other, ok, err := c.idx.Acquire(ctx, 1, time.Minute)
	if err != nil || !ok {
		t.Fatalf("acquire queue 1: %v %v", ok, err)
	}
	if err := c.idx.Add(ctx, n, queue.Entry{UserID: user(0), TemplateID: 1, PushAt: now, Version: 1}); err != nil {
		t.Fatal(err)
	}
	const bound = time.Second // OrphanMarkAge/3
	var published atomic.Int64
	c.start(t, n, scheduler.Config{MarkInterval: 50 * time.Millisecond, OrphanMarkAge: 3 * bound,
		Observe: func(push.Push, time.Duration) { published.CompareAndSwap(0, time.Now().UnixNano()) }})
	enginetest.Eventually(t, "the sent-mark of queue 0", 10*time.Second, func() bool { return c.marks.len() == 1 })
	c.marks.mu.Lock()
	waited := c.marks.first.Sub(time.Unix(0, published.Load()))
	c.marks.mu.Unlock()
	if waited < bound {
		t.Fatalf("marked %v after the publish while queue 1 waited; want the mark held back %v", waited, bound)
	}
	// Once queue 1 is free, it is drained and marked too.
	if err := c.idx.Release(ctx, other); err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, "the sent-mark of queue 1", 10*time.Second, func() bool { return c.marks.len() == 2 })
}

// TestReadyChunksPublishedWithWorkAheadOff: chunks a worker prepared with
// work ahead on are published by a scheduler that has it off (a change of
// configuration, or a mixed rollout): their items are taken, so nobody
// else would push them.
func TestReadyChunksPublishedWithWorkAheadOff(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t)
	col := c.collector(t)
	ahead, err := queue.New(enginetest.Redis(t), queue.Options{Prefix: c.prefix, PrepareAhead: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now, err := ahead.Time(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const users = 50
	for u := int64(1); u <= users; u++ {
		if err := ahead.Add(ctx, 1, queue.Entry{UserID: u, TemplateID: 1, PushAt: now.Add(time.Second), Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	l, ok, err := ahead.Acquire(ctx, 0, time.Second)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	p, err := ahead.Prepare(ctx, l, queue.PrepareOptions{PopOptions: queue.PopOptions{MergeWindow: time.Second, MaxUsers: 1000, Deadline: 10 * time.Second}})
	if err != nil || len(p.Chunk.Pushes) != users {
		t.Fatalf("prepared %d pushes, %v; want %d", len(p.Chunk.Pushes), err, users)
	}
	if err := ahead.Release(ctx, l); err != nil {
		t.Fatal(err)
	}
	s := c.start(t, 1, scheduler.Config{}) // c.ahead is 0: work ahead off
	enginetest.Eventually(t, "the prepared pushes published", 20*time.Second, func() bool {
		return pushtest.Summarise(col.All()).Unique() == users
	})
	if got := s.Stats().Prepared.Load(); got != 0 {
		t.Fatalf("the scheduler with work ahead off prepared %d", got)
	}
}

// TestIdleSlotWakesWhenWorkFallsDue: a slot with nothing to do waits a
// tick, or less when the next work comes sooner (by the next index). With
// a tick far longer than the test, a reminder due a second after the
// slot's first look is still pushed.
func TestIdleSlotWakesWhenWorkFallsDue(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t)
	col := c.collector(t)
	now, err := c.idx.Time(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Due soon: known before the slot's first look, so it waits for it.
	if err := c.idx.Add(ctx, 2, queue.Entry{UserID: 1, TemplateID: 1, PushAt: now.Add(time.Second), Version: 1}); err != nil {
		t.Fatal(err)
	}
	c.start(t, 2, scheduler.Config{Slots: 1, Tick: time.Hour})
	enginetest.Eventually(t, "the first push, an hour's tick notwithstanding", 10*time.Second, func() bool {
		return pushtest.Summarise(col.All()).Unique() == 1
	})
}

// TestSealedChunksToldOnce: pushes published from their seals reach
// Observe and Taken (late, once the burst is out, parsed from their
// stored form) exactly once each, and are marked sent.
func TestSealedChunksToldOnce(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t)
	c.ahead = 5 * time.Second
	col := c.collector(t)
	now, err := c.idx.Time(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const users = 300
	for u := int64(1); u <= users; u++ {
		if err := c.idx.Add(ctx, 1, queue.Entry{UserID: u, TemplateID: 1 + u%3, PushAt: now.Add(2 * time.Second), Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu       sync.Mutex
		observed = map[int64]int{}
		taken    = map[int64]int{}
		badLate  []time.Duration
	)
	s := c.start(t, 1, scheduler.Config{MarkInterval: 50 * time.Millisecond,
		Observe: func(p push.Push, late time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			observed[p.UserID]++
			if late < -100*time.Millisecond || late > 10*time.Second {
				badLate = append(badLate, late)
			}
		},
		Taken: func(ch queue.Chunk) {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range ch.Pushes {
				for _, it := range p.Items {
					if it.TemplateID == 1+p.UserID%3 {
						taken[p.UserID]++
					} else {
						taken[p.UserID] += 1000 // not an item this user was given
					}
				}
			}
		}})
	enginetest.Eventually(t, "every push published, observed and marked", 30*time.Second, func() bool {
		mu.Lock()
		n := len(observed)
		mu.Unlock()
		return pushtest.Summarise(col.All()).Unique() == users && n == users && c.marks.len() == users
	})
	if got := s.Stats().Sealed.Load(); got != users {
		t.Fatalf("%d pushes sealed, want all %d (published from their seals)", got, users)
	}
	mu.Lock()
	defer mu.Unlock()
	for u := int64(1); u <= users; u++ {
		if observed[u] != 1 || taken[u] != 1 {
			t.Fatalf("user %d: observed %d times, taken %d; want once each", u, observed[u], taken[u])
		}
	}
	if len(badLate) > 0 {
		t.Fatalf("lateness shown to Observe %v; want each push's lateness at its publish", badLate)
	}
}
