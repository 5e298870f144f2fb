package worker_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/enginetest"
	"couponpush/internal/pushtest"
	"couponpush/internal/seed"
	"couponpush/queue"
	"couponpush/worker"
)

// The tests of work ahead of due (R9) with worker processes: pushes are
// prepared into ready chunks in Redis up to prepare_ahead before due and
// published at due by whoever holds the queue then. Each shows in Redis
// that the work really was prepared before due, and each checks R1's
// lower bound: nothing reaches the consumer before its push time minus the
// merge window by the Redis clock.

// aheadQueues is the queue count of these tests (the workers' default N).
const aheadQueues = 16

// aheadWindow is the merge window the workers run with: small, so that a
// push published early by even a fraction of a second is caught.
const aheadWindow = 100 * time.Millisecond

// aheadFlags are the worker flags of these tests.
var aheadFlags = []string{"-merge-window", aheadWindow.String(), "-prepare-ahead", "5s", "-work-ahead", "on", "-pop-batch", "200", "-slots", "2"}

// ahead is one test's reminders, all of one template, seeded ahead of due.
type ahead struct {
	rdb  *redis.Client
	idx  *queue.Client
	tid  int64
	want map[pushtest.Pair]bool
	col  *pushtest.Collector
	// offset is the Redis clock minus this process's clock.
	offset time.Duration
}

// seedAhead creates a template through api and seeds a reminder of it for
// each user in users, due at pushAt(user), while emitting is paused; then
// it starts a collector on the topic and resumes emitting.
func seedAhead(t *testing.T, e *env, api string, users []int64, pushAt func(u int64) time.Time) *ahead {
	t.Helper()
	grab := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	code, body := call(t, "POST", api+"/v1/templates", map[string]any{
		"name": "ahead", "type": "fixed", "value": 500, "threshold_cents": 0, "stock": 1000000,
		"grab_start": ms(grab), "grab_end": ms(grab.Add(time.Hour)), "valid_days": 7,
	})
	if code != http.StatusCreated {
		t.Fatalf("create template: %d %v", code, body)
	}
	a := &ahead{tid: int64(body["id"].(float64)), want: map[pushtest.Pair]bool{}}
	db, err := sql.Open("mysql", e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a.rdb = redis.NewClient(&redis.Options{Addr: e.redis, PoolSize: 32})
	t.Cleanup(func() { _ = a.rdb.Close() })
	if a.idx, err = queue.New(a.rdb, queue.Options{Prefix: e.prefix}); err != nil {
		t.Fatal(err)
	}
	a.offset = redisOffset(t, a.rdb)
	ctx := context.Background()
	if err := a.idx.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	entries := make([]queue.Entry, 0, len(users))
	for _, u := range users {
		entries = append(entries, queue.Entry{UserID: u, TemplateID: a.tid, PushAt: pushAt(u), Version: 1})
		a.want[pushtest.Pair{UserID: u, TemplateID: a.tid}] = true
	}
	began := time.Now()
	if err := seed.Subscriptions(ctx, db, a.idx.NewRouter(func() int { return aheadQueues }), 32, entries); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d reminders in %v", len(entries), time.Since(began).Round(time.Millisecond))
	if a.col, err = pushtest.NewCollector(e.nsqd, e.prefix); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.col.Stop)
	if err := a.idx.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpQueues(t, a.rdb, e.prefix, aheadQueues)
		}
	})
	return a
}

// userRange is users from..to.
func userRange(from, to int64) []int64 {
	out := make([]int64, 0, to-from+1)
	for u := from; u <= to; u++ {
		out = append(out, u)
	}
	return out
}

// redisOffset is the Redis clock minus this process's clock.
func redisOffset(t *testing.T, rdb *redis.Client) time.Duration {
	t.Helper()
	before := time.Now()
	rt, err := rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	return rt.Sub(before.Add(after.Sub(before) / 2))
}

// redisNow is the Redis clock as estimated here.
func (a *ahead) redisNow() time.Time { return time.Now().Add(a.offset) }

// readyChunks returns the pushes of the ready chunks of queues (every
// queue when nil) whose publish has not begun, as the stored lines
// "user|tid:ms,..." by user, and how many chunks hold them.
func readyChunks(t *testing.T, rdb *redis.Client, prefix string, queues map[int]bool) (map[int64]string, int) {
	t.Helper()
	ctx := context.Background()
	lines, chunks := map[int64]string{}, 0
	for q := range aheadQueues {
		if queues != nil && !queues[q] {
			continue
		}
		tag := fmt.Sprintf("%s:{%s:q%d}:", prefix, prefix, q)
		ids, err := rdb.ZRange(ctx, tag+"ready", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			continue
		}
		chunks += len(ids)
		vals, err := rdb.HMGet(ctx, tag+"prep", ids...).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			s, _ := v.(string)
			for line := range strings.SplitSeq(s, "\n") {
				user, _, ok := strings.Cut(line, "|")
				if !ok {
					continue
				}
				u, err := strconv.ParseInt(user, 10, 64)
				if err != nil {
					t.Fatalf("ready chunk line %q: %v", line, err)
				}
				lines[u] = line
			}
		}
	}
	return lines, chunks
}

// checkNotEarly fails t if any push reached the consumer before its
// earliest item's push time minus the merge window, by the Redis clock
// (R1, R9): it cannot have been published later than it arrived.
func checkNotEarly(t *testing.T, a *ahead) {
	t.Helper()
	var first time.Duration // the least lead over a push time; negative when late
	seen := false
	for _, g := range a.col.All() {
		at := g.At.Add(a.offset)
		for _, it := range g.Items {
			early := it.PushAt.Sub(at)
			if early > aheadWindow {
				t.Fatalf("R9: push %s (user %d) arrived at %s by the Redis clock, %v before its item's push time %s (merge window %v)",
					g.ID, g.UserID, ms(at), early, ms(it.PushAt), aheadWindow)
			}
			if !seen || early > first {
				first, seen = early, true
			}
		}
	}
	t.Logf("the earliest arrival came %v after its push time (negative: before it; merge window %v)", -first, aheadWindow)
}

// checkUnchanged fails t unless every user's push prepared as line
// "user|tid:ms,..." arrived with exactly those items.
func checkUnchanged(t *testing.T, a *ahead, lines map[int64]string) {
	t.Helper()
	got := map[int64]string{}
	for _, g := range a.col.All() {
		if _, ok := lines[g.UserID]; !ok {
			continue
		}
		parts := make([]string, len(g.Items))
		for i, it := range g.Items {
			parts[i] = fmt.Sprintf("%d:%d", it.TemplateID, it.PushAt.UnixMilli())
		}
		slices.Sort(parts)
		got[g.UserID] = fmt.Sprintf("%d|%s", g.UserID, strings.Join(parts, ","))
	}
	for u, line := range lines {
		user, rest, _ := strings.Cut(line, "|")
		items := strings.Split(rest, ",")
		slices.Sort(items)
		if want := user + "|" + strings.Join(items, ","); got[u] != want {
			t.Fatalf("R9: user %d's push was prepared as %q and arrived as %q", u, want, got[u])
		}
	}
}

// waitDelivered waits until every wanted reminder has arrived.
func waitDelivered(t *testing.T, a *ahead, limit time.Duration) {
	t.Helper()
	enginetest.Eventually(t, "every reminder delivered", limit, func() bool {
		return pushtest.Summarise(a.col.All()).Unique() >= len(a.want)
	})
}

// TestAheadKillPreparerBeforeDue: two workers prepare a burst due 10 s
// after it was seeded; one SIGKILLs itself right after preparing its third
// chunk, still holding that queue's lease, seconds before due. The other
// takes its queues over once the lease runs out, publishes the ready
// chunks it left, unchanged, and everything else, at due and not before:
// every reminder arrives, none under two push ids.
func TestAheadKillPreparerBeforeDue(t *testing.T) {
	e := newEnv(t)
	const reminders = 20_000
	w1 := e.startWorker(t, "w1", aheadFlags...)
	w2 := e.startWorkerEnv(t, "w2", []string{worker.FailpointEnv + "=crash-after-prepare:3"}, aheadFlags...)
	due := time.Now().Add(10 * time.Second).Truncate(time.Second)
	a := seedAhead(t, e, "http://"+w1.addr, userRange(1, reminders), func(int64) time.Time { return due })

	enginetest.Eventually(t, "w2 to kill itself after preparing", 30*time.Second, w2.exited)
	killedAt := a.redisNow()
	held := heldBy(t, a.idx, aheadQueues, "w2")
	left, chunks := readyChunks(t, a.rdb, e.prefix, held)
	t.Logf("w2 died %v before due holding queues %v with %d ready chunks (%d pushes) in them", due.Sub(killedAt).Round(time.Millisecond), keys(held), chunks, len(left))
	if !killedAt.Before(due) {
		t.Fatalf("w2 died at %s, after due %s: the machine is too slow for this test's margins", ms(killedAt), ms(due))
	}
	if len(held) == 0 || len(left) == 0 {
		t.Fatalf("w2 died holding queues %v with no ready chunk in them", keys(held))
	}
	if n := pushtest.Summarise(a.col.All()).Unique(); n > 0 {
		t.Fatalf("%d reminders arrived before due", n)
	}
	enginetest.Eventually(t, "w2's queues taken over", 30*time.Second, func() bool { return takenOver(t, a.idx, aheadQueues, "w2", held) })
	waitDelivered(t, a, 60*time.Second)
	r := checkDelivered(t, "R1/R5 after a preparer's death", a.col, a.want, nil)
	checkNotEarly(t, a)
	checkUnchanged(t, a, left)
	t.Logf("%d deliveries, %d repeats (same push_id)", r.Deliveries, r.Repeats)
}

// TestAheadKillMidPublish: two workers prepare a whole burst before due;
// at due one SIGKILLs itself after nsqd accepted its third prepared chunk
// and before acking it. The other republishes that chunk, and whatever
// the dead one had begun and not published, under the same push ids.
func TestAheadKillMidPublish(t *testing.T) {
	e := newEnv(t)
	const reminders = 10_000
	w1 := e.startWorker(t, "w1", aheadFlags...)
	w2 := e.startWorkerEnv(t, "w2", []string{worker.FailpointEnv + "=crash-before-ack:3"}, aheadFlags...)
	due := time.Now().Add(10 * time.Second).Truncate(time.Second)
	a := seedAhead(t, e, "http://"+w1.addr, userRange(1, reminders), func(int64) time.Time { return due })

	// Everything is prepared before due: every chunk published at due,
	// w2's among them, is a prepared one.
	var lines map[int64]string
	enginetest.Eventually(t, "the whole burst prepared before due", time.Until(due.Add(-a.offset)), func() bool {
		lines, _ = readyChunks(t, a.rdb, e.prefix, nil)
		return len(lines) == reminders
	})
	t.Logf("the whole burst prepared %v before due", due.Sub(a.redisNow()).Round(time.Millisecond))
	enginetest.Eventually(t, "w2 to kill itself mid-publish", 30*time.Second, w2.exited)
	atKill := pushtest.Summarise(a.col.All()).Unique()
	t.Logf("w2 died %v after due with %d of %d reminders delivered", a.redisNow().Sub(due).Round(time.Millisecond), atKill, reminders)
	if atKill >= reminders {
		t.Fatalf("w2 died after the burst (%d delivered)", atKill)
	}
	waitDelivered(t, a, 60*time.Second)
	t.Logf("every reminder delivered %v after due", a.redisNow().Sub(due).Round(time.Millisecond))
	// nsqd took w2's last chunks before it died, so every reminder may
	// have arrived before w1 takes w2's queues over: the republish of the
	// chunks it never acked comes after.
	enginetest.Eventually(t, "R5/R7: the prepared chunks w2 published and never acked republished", 30*time.Second, func() bool {
		return pushtest.Summarise(a.col.All()).Repeats > 0
	})
	r := checkDelivered(t, "R1/R5 after a death mid-publish", a.col, a.want, nil)
	checkNotEarly(t, a)
	checkUnchanged(t, a, lines)
	t.Logf("%d deliveries, %d repeats (same push_id)", r.Deliveries, r.Repeats)
}

// TestAheadSkewedClockPublishesNothingEarly: the only worker's scheduler
// believes the Redis clock is 2 s later than it is (a clock-skew
// failpoint). It picks its queues early by that clock, but the ready
// chunks are begun and due users popped by the Redis clock, so with a
// 100 ms merge window nothing arrives early; its own lateness metric,
// taken by its skewed clock, shows the skew was in force.
func TestAheadSkewedClockPublishesNothingEarly(t *testing.T) {
	e := newEnv(t)
	const reminders, spreads = 2000, 10
	const step = 300 * time.Millisecond
	w := e.startWorkerEnv(t, "w1", []string{worker.FailpointEnv + "=clock-skew:2000"}, aheadFlags...)
	enginetest.Eventually(t, "the clock-skew failpoint armed", 30*time.Second, func() bool {
		return strings.Contains(w.log.String(), "clock-skew")
	})
	due := time.Now().Add(8 * time.Second).Truncate(time.Second)
	a := seedAhead(t, e, "http://"+w.addr, userRange(1, reminders), func(u int64) time.Time {
		return due.Add(time.Duration(u%spreads) * step)
	})
	// By the skewed clock the last slice would be taken and begun 2 s
	// early, so every slice is prepared before its due.
	var lines map[int64]string
	enginetest.Eventually(t, "work prepared before due", time.Until(due.Add(-a.offset)), func() bool {
		lines, _ = readyChunks(t, a.rdb, e.prefix, nil)
		return len(lines) == reminders
	})
	waitDelivered(t, a, 60*time.Second)
	checkDelivered(t, "R1/R3 with a skewed clock", a.col, a.want, nil)
	checkNotEarly(t, a)
	checkUnchanged(t, a, lines)

	fams := scrapeOf(t, "http://"+w.ops)
	f, ok := fams["couponpush_push_lateness_seconds"]
	if !ok || len(f.GetMetric()) == 0 {
		t.Fatal("no couponpush_push_lateness_seconds on the worker")
	}
	h := f.GetMetric()[0].GetHistogram()
	mean := time.Duration(h.GetSampleSum() / float64(max(h.GetSampleCount(), 1)) * float64(time.Second))
	t.Logf("mean lateness by the worker's skewed clock: %v over %d pushes", mean.Round(time.Millisecond), h.GetSampleCount())
	if mean < 1500*time.Millisecond {
		t.Fatalf("mean lateness by the worker's own clock is %v: the 2 s skew was not in force", mean)
	}
}

// TestAheadCancelRacingDue: rounds of 200 users due at one millisecond,
// each of whose reminders is cancelled through the API by a DELETE sent
// at its own moment from 100 ms before due to 100 ms after. A DELETE
// answered 204 (withdrawn from its ready chunk, or cancelled) is never
// pushed; one answered 409 already_sent is pushed exactly once; nothing
// else arrives, and MySQL ends with the same split.
func TestAheadCancelRacingDue(t *testing.T) {
	e := newEnv(t)
	const users, rounds = 200, 4
	const spread = 200 * time.Millisecond
	w1 := e.startWorker(t, "w1", aheadFlags...)
	w2 := e.startWorker(t, "w2", aheadFlags...)
	apis := []string{"http://" + w1.addr, "http://" + w2.addr}
	base := time.Now().Add(8 * time.Second).Truncate(time.Second)
	dueOf := func(round int) time.Time { return base.Add(time.Duration(round) * 1500 * time.Millisecond) }
	a := seedAhead(t, e, apis[0], userRange(1, users*rounds), func(u int64) time.Time { return dueOf(int((u - 1) / users)) })

	var mu sync.Mutex
	cancelled, sent := map[pushtest.Pair]bool{}, map[pushtest.Pair]bool{}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: users}, Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	for round := range rounds {
		due := dueOf(round)
		// Before the first DELETE goes out, the round is prepared.
		start := due.Add(-a.offset - spread/2)
		enginetest.Eventually(t, fmt.Sprintf("round %d prepared", round), time.Until(start), func() bool {
			lines, _ := readyChunks(t, a.rdb, e.prefix, nil)
			for u := int64(round*users + 1); u <= int64((round+1)*users); u++ {
				if _, ok := lines[u]; !ok {
					return false
				}
			}
			return true
		})
		var wg sync.WaitGroup
		var n204, n409 int
		for i := range users {
			u := int64(round*users + i + 1)
			k := pushtest.Pair{UserID: u, TemplateID: a.tid}
			at := start.Add(spread * time.Duration(i) / users)
			wg.Go(func() {
				time.Sleep(time.Until(at)) // this DELETE's moment in the spread, not a wait for a result
				req, err := http.NewRequest("DELETE", fmt.Sprintf("%s/v1/subscriptions/%d/%d", apis[i%2], u, a.tid), nil)
				if err != nil {
					t.Error(err)
					return
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Errorf("DELETE %v: %v", k, err)
					return
				}
				var body map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				mu.Lock()
				defer mu.Unlock()
				switch {
				case resp.StatusCode == http.StatusNoContent:
					cancelled[k] = true
					n204++
				case resp.StatusCode == http.StatusConflict && errCode(body) == "already_sent":
					sent[k] = true
					n409++
				default:
					t.Errorf("DELETE %v: %d %v", k, resp.StatusCode, body)
				}
			})
		}
		wg.Wait()
		t.Logf("round %d: %d answered 204, %d answered 409 already_sent", round, n204, n409)
	}
	if t.Failed() {
		t.FailNow()
	}
	if len(cancelled) == 0 || len(sent) == 0 {
		t.Fatalf("the cancels never raced the due moment: %d answered 204, %d answered 409", len(cancelled), len(sent))
	}
	// Everything answered 409 arrives, and MySQL learns it was sent; by
	// then nothing is left in flight or ready, so nothing more can come.
	enginetest.Eventually(t, "every 409 reminder delivered and marked sent", 60*time.Second, func() bool {
		if pushtest.Summarise(a.col.All()).Unique() < len(sent) {
			return false
		}
		db, err := sql.Open("mysql", e.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM subscriptions WHERE template_id = ? AND status = 'sent'", a.tid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == len(sent)
	})
	enginetest.Eventually(t, "no work left in Redis", 30*time.Second, func() bool {
		qs, err := a.idx.Inspect(context.Background(), aheadQueues)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			if q.InFlight > 0 {
				return false
			}
		}
		_, chunks := readyChunks(t, a.rdb, e.prefix, nil)
		return chunks == 0
	})
	r := checkDelivered(t, "R2/R3/R9 with cancels racing due", a.col, sent, cancelled)
	for k := range sent {
		if n := len(r.Reminders[k]); n != 1 {
			t.Fatalf("R3: reminder %v answered 409 and was pushed %d times", k, n)
		}
	}
	checkNotEarly(t, a)
	t.Logf("%d cancelled (204), %d pushed once (409)", len(cancelled), len(sent))
}

// errCode is the code of an API error body.
func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// TestAheadFlushWhilePreparedThenRebuild proves R8 with R9: two workers
// prepare a burst; Redis is flushed (FLUSHALL) with every push prepared
// and none published, and `scheduler-admin rebuild` re-indexes the
// pending rows from MySQL. Every reminder is still pushed, exactly once.
func TestAheadFlushWhilePreparedThenRebuild(t *testing.T) {
	e := newEnv(t)
	rp := enginetest.StartRedis(t) // this test's own: it is flushed
	e.redis = rp.Addr
	admin := buildAdmin(t)
	const reminders = 3000
	w1 := e.startWorker(t, "w1", aheadFlags...)
	e.startWorker(t, "w2", aheadFlags...)
	due := time.Now().Add(9 * time.Second).Truncate(time.Second)
	a := seedAhead(t, e, "http://"+w1.addr, userRange(1, reminders), func(int64) time.Time { return due })

	enginetest.Eventually(t, "the whole burst prepared", time.Until(due.Add(-a.offset)), func() bool {
		lines, _ := readyChunks(t, a.rdb, e.prefix, nil)
		return len(lines) == reminders
	})
	if err := a.rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	flushedAt := a.redisNow()
	if !flushedAt.Before(due) {
		t.Fatalf("flushed at %s, after due %s: the machine is too slow for this test's margins", ms(flushedAt), ms(due))
	}
	if n := len(a.col.All()); n > 0 {
		t.Fatalf("%d pushes arrived before due", n)
	}
	t.Logf("flushed Redis %v before due with the whole burst prepared", due.Sub(flushedAt).Round(time.Millisecond))

	cmd := exec.Command(admin, "-consul", e.consul, "-prefix", e.prefix, "-service", e.service,
		"-redis", e.redis, "-redis-prefix", e.prefix, "-mysql", e.dsn, "-queues", strconv.Itoa(aheadQueues), "rebuild", "-json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scheduler-admin rebuild: %v\n%s%s", err, out, stderr.String())
	}
	var res struct{ Read, Indexed, Present, Taken int }
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("scheduler-admin rebuild -json: %v: %s", err, out)
	}
	t.Logf("rebuild %+v, done %v before due", res, due.Sub(a.redisNow()).Round(time.Millisecond))
	if res.Read != reminders || res.Indexed != reminders {
		t.Fatalf("rebuild read %d and indexed %d of %d pending reminders", res.Read, res.Indexed, reminders)
	}

	waitDelivered(t, a, 60*time.Second)
	r := checkDelivered(t, "R1/R8/R9 after a flush", a.col, a.want, nil)
	for k, ids := range r.Reminders {
		if len(ids) != 1 {
			t.Fatalf("R3: reminder %v pushed %d times (%v)", k, len(ids), ids)
		}
	}
	checkNotEarly(t, a)
}
