package worker_test

import (
	"context"
	"database/sql"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/enginetest"
	"couponpush/internal/pushtest"
	"couponpush/internal/seed"
	"couponpush/queue"
	"couponpush/worker"
)

// heldBy returns the queues whose lease owner is id.
func heldBy(t *testing.T, idx *queue.Client, span int, id string) map[int]bool {
	t.Helper()
	qs, err := idx.Inspect(context.Background(), span)
	if err != nil {
		t.Fatal(err)
	}
	held := map[int]bool{}
	for _, q := range qs {
		if q.LeaseHeld && q.LeaseHolder == id {
			held[q.Queue] = true
		}
	}
	return held
}

// takenOver reports whether none of queues is still leased to id: each is
// held by another worker, or free.
func takenOver(t *testing.T, idx *queue.Client, span int, id string, queues map[int]bool) bool {
	t.Helper()
	for q := range heldBy(t, idx, span, id) {
		if queues[q] {
			return false
		}
	}
	return true
}

// TestStoppedWorkerCannotPublishAfterItsLease stops a worker (SIGSTOP,
// which it sends itself between taking a chunk and publishing it; one
// slot, so it holds no other chunk between publish and ack) past its
// lease: another worker takes its queue over and republishes the chunk,
// and when the stopped worker runs again (SIGCONT) it publishes nothing of
// it, although its own goroutine goes on right where it stopped: nothing
// arrives after it resumes.
func TestStoppedWorkerCannotPublishAfterItsLease(t *testing.T) {
	e := newEnv(t)
	const reminders, queues = 4000, 16
	lease := []string{"-lease", "1s", "-lease-renew", "250ms", "-pop-batch", "50"}
	w1 := e.startWorker(t, "w1", append(lease, "-slots", "2")...)
	w2 := e.startWorkerEnv(t, "w2", []string{worker.FailpointEnv + "=stop-before-publish:1"}, append(lease, "-slots", "1")...)
	api := "http://" + w1.addr
	t.Cleanup(func() { _ = w2.cmd.Process.Signal(syscall.SIGCONT) })

	idx, want, col := dueBurst(t, e, api, "stop", reminders, queues)

	pid := w2.cmd.Process.Pid
	enginetest.Eventually(t, "w2 to stop itself before its first publish", 60*time.Second, func() bool { return enginetest.Stopped(pid) })
	stoppedAt := time.Now()
	held := heldBy(t, idx, queues, "w2")
	if len(held) == 0 {
		t.Fatal("w2 stopped holding no lease")
	}
	enginetest.Eventually(t, "w1 to take w2's queues over", 30*time.Second, func() bool { return takenOver(t, idx, queues, "w2", held) })
	t.Logf("w2's queues %v taken over %v after it stopped", keys(held), time.Since(stoppedAt).Round(time.Millisecond))
	enginetest.Eventually(t, "every reminder delivered while w2 is stopped", 60*time.Second, func() bool {
		return pushtest.Summarise(col.All()).Unique() >= len(want)
	})

	resumed, before := time.Now(), len(w2.log.String())
	if err := w2.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Resumed, w2 either finds at the publish that its lease has run out
	// (balance.Held.Valid), or its renewal, running first, finds the lease
	// lost and cancels the publish: either way it says so.
	enginetest.Eventually(t, "w2 to give its chunk up once resumed", 30*time.Second, func() bool {
		after := w2.log.String()[before:]
		return strings.Contains(after, "lease has run out") || strings.Contains(after, "lease lost")
	})
	// Everything had arrived, from w1, before w2 resumed; w2 had nothing
	// left but the chunk it withheld.
	for _, p := range col.All() {
		if p.At.After(resumed) {
			t.Fatalf("push %s (user %d) arrived after w2 resumed: w2 published what w1 had republished", p.ID, p.UserID)
		}
	}
	checkDelivered(t, "a stopped holder publishes nothing after its lease", col, want, nil)
	// A publish the lease check withheld is counted.
	if fenced, _ := scrapeOf(t, "http://"+w2.ops).value("couponpush_publishes_fenced_total"); strings.Contains(w2.log.String(), "lease has run out") && fenced < 1 {
		t.Fatalf("couponpush_publishes_fenced_total = %v on w2, which withheld a publish", fenced)
	}
}

// dueBurst creates a template through the API at api and seeds n
// reminders of it into the given number of queues, all due, while
// emitting is paused (so the whole burst is due when it starts); then it
// starts a collector on the topic and resumes emitting. It returns the
// queue client, the reminders and the collector (stopped at cleanup).
func dueBurst(t *testing.T, e *env, api, name string, n, queues int) (*queue.Client, map[pushtest.Pair]bool, *pushtest.Collector) {
	t.Helper()
	grab := time.Now().Add(90 * time.Second).Truncate(time.Second)
	code, body := call(t, "POST", api+"/v1/templates", map[string]any{
		"name": name, "type": "fixed", "value": 500, "threshold_cents": 0, "stock": 1000000,
		"grab_start": ms(grab), "grab_end": ms(grab.Add(time.Hour)), "valid_days": 7,
	})
	if code != http.StatusCreated {
		t.Fatalf("create template: %d %v", code, body)
	}
	tid := int64(body["id"].(float64))
	db, err := sql.Open("mysql", e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rdb := redis.NewClient(&redis.Options{Addr: e.redis})
	t.Cleanup(func() { _ = rdb.Close() })
	idx, err := queue.New(rdb, queue.Options{Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := idx.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[pushtest.Pair]bool{}
	entries := make([]queue.Entry, 0, n)
	pushAt := time.Now().Add(-time.Second)
	for u := int64(1); u <= int64(n); u++ {
		entries = append(entries, queue.Entry{UserID: u, TemplateID: tid, PushAt: pushAt, Version: 1})
		want[pushtest.Pair{UserID: u, TemplateID: tid}] = true
	}
	if err := seed.Subscriptions(ctx, db, idx.NewRouter(func() int { return queues }), 32, entries); err != nil {
		t.Fatal(err)
	}
	col, err := pushtest.NewCollector(e.nsqd, e.prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(col.Stop)
	if err := idx.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	return idx, want, col
}

func keys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestRedisStallPastTheLease freezes Redis (SIGSTOP) mid-burst for longer
// than the lease, under two workers: when it runs again every lease has
// expired by its clock, the workers' renewals were cut off by the time
// their leases had left, and whatever they had taken is either published
// under its push id or left to the next holder, never both under
// different ids. Every reminder still arrives, once or repeated under the
// same push_id.
func TestRedisStallPastTheLease(t *testing.T) {
	e := newEnv(t)
	rp := enginetest.StartRedis(t)
	e.redis = rp.Addr
	const reminders, queues = 20_000, 16
	flags := []string{"-lease", "1s", "-lease-renew", "250ms", "-pop-batch", "100", "-slots", "2"}
	w1 := e.startWorker(t, "w1", flags...)
	e.startWorker(t, "w2", flags...)
	api := "http://" + w1.addr

	_, want, col := dueBurst(t, e, api, "stall", reminders, queues)
	enginetest.Eventually(t, "the burst under way", 60*time.Second, func() bool {
		return pushtest.Summarise(col.All()).Unique() >= reminders/20
	})
	rp.Freeze(t)
	atFreeze := pushtest.Summarise(col.All()).Unique()
	time.Sleep(1500 * time.Millisecond) // the stall itself: Redis stopped past the 1 s lease
	rp.Thaw(t)
	t.Logf("Redis stopped 1.5 s with %d of %d reminders delivered", atFreeze, reminders)
	if atFreeze >= reminders {
		t.Fatal("the stall came after the burst")
	}
	enginetest.Eventually(t, "every reminder delivered after the stall", 90*time.Second, func() bool {
		return pushtest.Summarise(col.All()).Unique() >= len(want)
	})
	r := checkDelivered(t, "a Redis stall past the lease", col, want, nil)
	t.Logf("%d deliveries, %d repeats (same push_id)", r.Deliveries, r.Repeats)
}
