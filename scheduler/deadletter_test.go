package scheduler_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"couponpush/balance"
	"couponpush/internal/enginetest"
	"couponpush/internal/pushtest"
	"couponpush/push"
	"couponpush/queue"
	"couponpush/scheduler"
)

// someTemplates answers every template but missing, until it is restored.
type someTemplates struct {
	missing  int64
	restored atomic.Bool
}

func (g *someTemplates) GrabStart(_ context.Context, id int64) (time.Time, error) {
	if id == g.missing && !g.restored.Load() {
		return time.Time{}, fmt.Errorf("template %d: %w", id, scheduler.ErrNoTemplate)
	}
	return time.Unix(0, 0).Add(time.Minute), nil
}

// countRetries counts the publisher's "retrying" warnings.
type countRetries struct{ n atomic.Int64 }

func (h *countRetries) Enabled(context.Context, slog.Level) bool { return true }
func (h *countRetries) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "retrying") {
		h.n.Add(1)
	}
	return nil
}
func (h *countRetries) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countRetries) WithGroup(string) slog.Handler      { return h }

// startOn runs one scheduler publishing to nsqd at addr with pcfg.
func (c *cluster) startOn(t *testing.T, n int, addr string, pcfg push.PublisherConfig, tpl scheduler.Templates, cfg scheduler.Config) *scheduler.Scheduler {
	t.Helper()
	rdb := enginetest.Redis(t)
	idx, err := queue.New(rdb, queue.Options{Prefix: c.prefix})
	if err != nil {
		t.Fatal(err)
	}
	bal, err := balance.New(rdb, idx, balance.Config{Prefix: c.prefix, Lease: 2 * time.Second, RenewEvery: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pcfg.NSQDAddr, pcfg.Topic = addr, c.topic
	pub, err := push.NewPublisher(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Count = func() int { return n }
	s, err := scheduler.New(cfg, scheduler.Deps{Index: idx, Balancer: bal, Publisher: pub, Templates: tpl, Marker: c.marks})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(); pub.Stop() })
	return s
}

// TestPoisonPushesDoNotStopTheirQueue: in one queue beside 10,000 good
// reminders, a push nsqd refuses (larger than its --max-msg-size) and a
// push of a template that does not exist are dead-lettered, and every good
// reminder still goes out near its due time, not after a flight deadline.
// Replaying the second once its template exists publishes it with the
// push id it was logged with.
func TestPoisonPushesDoNotStopTheirQueue(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t)
	nsqd := enginetest.StartNSQDArgs(t, "--max-msg-size=4096")
	col, err := pushtest.NewCollector(nsqd.Addr, c.topic)
	if err != nil {
		t.Fatal(err)
	}
	defer col.Stop()

	const good = 10_000
	const big, orphan, missing = good + 1, good + 2, int64(666)
	now, err := c.idx.Time(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base := now.Add(2 * time.Second).Truncate(time.Millisecond)
	add := func(u, tid int64, at time.Time) {
		t.Helper()
		if err := c.idx.Add(ctx, 1, queue.Entry{UserID: u, TemplateID: tid, PushAt: at, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// The poison pushes are due first, so they are in the first chunk.
	for tid := int64(1); tid <= 60; tid++ { // 60 items: about 5.5 KB
		add(big, tid, base.Add(-time.Second))
	}
	add(orphan, missing, base.Add(-time.Second))
	for u := int64(1); u <= good; u++ {
		add(u, 1, base.Add(time.Duration(u%1000)*time.Millisecond))
	}

	tpl := &someTemplates{missing: missing}
	var mu sync.Mutex
	var worst time.Duration
	// A flight deadline far above a drain's time here (2-4 s under -race
	// on a loaded 2-core machine): a queue held up by its poison pushes
	// would make the good ones wait for it.
	cfg := scheduler.Config{Slots: 2, Deadline: 30 * time.Second, Observe: func(p push.Push, late time.Duration) {
		mu.Lock()
		worst = max(worst, late)
		mu.Unlock()
	}}
	// Batches of 10 pushes fit nsqd's 4 KiB; the 60-item push does not.
	s := c.startOn(t, 1, nsqd.Addr, push.PublisherConfig{MaxPushesPerBatch: 10}, tpl, cfg)

	enginetest.Eventually(t, "every good reminder delivered", 60*time.Second, func() bool {
		return pushtest.Summarise(col.All()).Unique() >= good
	})
	enginetest.Eventually(t, "sent-marks of the good reminders", 20*time.Second, func() bool { return c.marks.len() >= good })
	mu.Lock()
	late := worst
	t.Logf("worst lateness of a good push %v", late)
	mu.Unlock()
	if late >= cfg.Deadline/2 {
		t.Errorf("worst lateness %v: the good pushes waited for the poison ones", late)
	}
	r := pushtest.Summarise(col.All())
	if r.Unique() != good {
		t.Errorf("%d reminders delivered, want %d", r.Unique(), good)
	}
	for _, u := range []int64{big, orphan} {
		if n := len(r.Reminders[pushtest.Pair{UserID: u, TemplateID: 1}]) + len(r.Reminders[pushtest.Pair{UserID: u, TemplateID: missing}]); n != 0 {
			t.Errorf("poison user %d delivered", u)
		}
	}
	dead, err := c.idx.DeadLetters(ctx, 0)
	if err != nil || len(dead) != 2 {
		t.Fatalf("dead letters = %+v, %v; want two", dead, err)
	}
	var replay []queue.DeadPush
	for _, d := range dead {
		switch d.Push.UserID {
		case big:
			if len(d.Push.Items) != 60 || !strings.Contains(d.Reason, "E_BAD_MESSAGE") {
				t.Errorf("dead letter of the large push = %+v", d)
			}
		case orphan:
			if !strings.Contains(d.Reason, "template 666") {
				t.Errorf("dead letter of the orphan push = %+v", d)
			}
			replay = append(replay, d)
		default:
			t.Errorf("unexpected dead letter %+v", d)
		}
	}
	if got := s.Stats().DeadLettered.Load(); got != 2 {
		t.Errorf("DeadLettered = %d, want 2", got)
	}

	tpl.restored.Store(true)
	if n, err := c.idx.Replay(ctx, 0, replay); err != nil || n != 1 {
		t.Fatalf("replay = %d, %v", n, err)
	}
	want := push.ID(orphan, []push.Key{{TemplateID: missing, PushAtMs: base.Add(-time.Second).UnixMilli()}})
	enginetest.Eventually(t, "the replayed push", 30*time.Second, func() bool {
		return len(pushtest.Summarise(col.All()).Reminders[pushtest.Pair{UserID: orphan, TemplateID: missing}]) > 0
	})
	if ids := pushtest.Summarise(col.All()).Reminders[pushtest.Pair{UserID: orphan, TemplateID: missing}]; ids[0] != want {
		t.Errorf("replayed push id %v, want %s", ids, want)
	}
	enginetest.Eventually(t, "the replayed push's sent-mark", 20*time.Second, func() bool { return c.marks.len() == good+1 })
}

// TestNSQDDownIsRetriedNotDeadLettered: while nsqd is down a chunk is
// retried, never set aside; once nsqd is back it is delivered.
func TestNSQDDownIsRetriedNotDeadLettered(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t)
	nsqd := enginetest.StartNSQD(t)
	nsqd.Stop(t)
	now, err := c.idx.Time(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const users = 50
	for u := int64(1); u <= users; u++ {
		if err := c.idx.Add(ctx, 1, queue.Entry{UserID: u, TemplateID: 1, PushAt: now, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	retries := &countRetries{}
	s := c.startOn(t, 1, nsqd.Addr, push.PublisherConfig{RetryMax: 100 * time.Millisecond, Logger: slog.New(retries)},
		&someTemplates{}, scheduler.Config{Deadline: time.Second})
	enginetest.Eventually(t, "publish retries while nsqd is down", 30*time.Second, func() bool { return retries.n.Load() >= 5 })
	if n := s.Stats().DeadLettered.Load(); n != 0 {
		t.Fatalf("%d pushes dead-lettered while nsqd was down", n)
	}
	nsqd.Restart(t)
	col, err := pushtest.NewCollector(nsqd.Addr, c.topic)
	if err != nil {
		t.Fatal(err)
	}
	defer col.Stop()
	enginetest.Eventually(t, "every reminder delivered once nsqd is back", 30*time.Second, func() bool {
		return pushtest.Summarise(col.All()).Unique() == users
	})
	if dead, err := c.idx.DeadLetters(ctx, 0); err != nil || len(dead) != 0 || s.Stats().DeadLettered.Load() != 0 {
		t.Fatalf("dead letters = %+v, %v; want none", dead, err)
	}
}
