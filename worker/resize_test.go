package worker_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/cluster"
	"couponpush/internal/enginetest"
	"couponpush/internal/pushtest"
	"couponpush/internal/seed"
	"couponpush/queue"
)

// setQueueCount writes N to Consul as an operator would (check-and-set).
func setQueueCount(t *testing.T, c *cluster.Client, n int) {
	t.Helper()
	ctx := context.Background()
	for {
		_, idx, _, err := c.QueueCount(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := c.SetQueueCount(ctx, n, idx)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
	}
}

// TestChangeNDuringBurst proves R6 end to end: three worker processes push
// a 100,000-reminder burst while an operator changes N from 8 to 12, 3 and
// 16, and cancels and new subscriptions arrive through the API meanwhile.
// Nothing is missing, no reminder goes out under two push_ids, no cancel is
// broken, and every user's near-coincident reminders still arrive merged.
func TestChangeNDuringBurst(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	consul, err := cluster.New(cluster.Config{Addr: e.consul, Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer consul.Close()
	setQueueCount(t, consul, 8)
	workers := []*proc{
		e.startWorker(t, "w1", "-pop-batch", "200", "-slots", "2"),
		e.startWorker(t, "w2", "-pop-batch", "200", "-slots", "2"),
		e.startWorker(t, "w3", "-pop-batch", "200", "-slots", "2"),
	}
	api := "http://" + workers[0].addr
	rdb := redis.NewClient(&redis.Options{Addr: e.redis, PoolSize: 64})
	defer rdb.Close()
	idx, err := queue.New(rdb, queue.Options{Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, "the first layout recorded", 30*time.Second, func() bool {
		st, ok, err := idx.LayoutStatus(ctx)
		return err == nil && ok && st.To == 8
	})
	if err := idx.Pause(ctx); err != nil {
		t.Fatal(err)
	}

	// A's reminders fall due over 12 s from T0 (one template per 600 ms
	// slice); every fifth user also has B, 2 s after its A, inside the
	// merge window; C takes new subscriptions during the burst.
	// Room to seed 100,000 at 3,000/s, as a loaded 2-core machine running
	// another package's tests beside this one may (with 25 s, seeding once
	// ended 17.9 s after T0). Emitting is paused while seeding, so a late
	// seed only squeezes the burst, but then no cancel or change of N may
	// land in it and the test fails.
	t0 := time.Now().Add(40 * time.Second).Truncate(time.Second)
	const reminders, slices, spread = 100_000, 20, 12 * time.Second
	mk := func(name string, push time.Time) int64 {
		grab := push.Add(time.Minute)
		code, body := call(t, "POST", api+"/v1/templates", map[string]any{
			"name": name, "type": "fixed", "value": 500, "threshold_cents": 0, "stock": 1000000,
			"grab_start": ms(grab), "grab_end": ms(grab.Add(time.Hour)), "valid_days": 7,
		})
		if code != http.StatusCreated {
			t.Fatalf("create template: %d %v", code, body)
		}
		return int64(body["id"].(float64))
	}
	pushAt := map[int64]time.Time{}
	var tA [slices]int64
	for i := range tA {
		at := t0.Add(time.Duration(i) * spread / slices)
		tA[i] = mk(fmt.Sprintf("A%d", i), at)
		pushAt[tA[i]] = at
	}
	tB := make(map[int]int64) // slice → B template 2 s after it
	for i := 0; i < slices; i++ {
		at := t0.Add(time.Duration(i)*spread/slices + 2*time.Second)
		tB[i] = mk(fmt.Sprintf("B%d", i), at)
		pushAt[tB[i]] = at
	}
	tC := mk("C", t0.Add(spread+5*time.Second))

	type pair = pushtest.Pair
	want := map[pair]bool{}
	merges := map[int64]bool{}     // users whose A and B must arrive in one push
	users := (reminders*5 + 5) / 6 // 1/5 of them have a second reminder: 100,000 in all
	var entries []queue.Entry
	for u := int64(1); u <= int64(users); u++ {
		s := int(u % slices)
		tids := []int64{tA[s]}
		if u%5 == 0 {
			tids = append(tids, tB[s])
			merges[u] = true
		}
		for _, tid := range tids {
			entries = append(entries, queue.Entry{UserID: u, TemplateID: tid, PushAt: pushAt[tid], Version: 1})
			want[pair{UserID: u, TemplateID: tid}] = true
		}
	}
	db, err := sql.Open("mysql", e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := seed.Subscriptions(ctx, db, idx.NewRouter(func() int { return 8 }), 32, entries); err != nil {
		t.Fatal(err)
	}
	t.Logf("subscribed %d reminders; %v before the burst", len(want), time.Until(t0).Round(time.Millisecond))

	col, err := pushtest.NewCollector(e.nsqd, e.prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer col.Stop()
	t.Cleanup(func() {
		if t.Failed() {
			dumpQueues(t, rdb, e.prefix, 16)
		}
	})
	if err := idx.Resume(ctx); err != nil {
		t.Fatal(err)
	}

	// The operator: once pushes flow, 8 → 12 → 3 → 16, each as soon as the
	// previous move finished.
	var flips []string
	var traffic sync.WaitGroup
	var mu sync.Mutex
	cancelled := map[pair]bool{}
	stopTraffic := make(chan struct{})
	enginetest.Eventually(t, "the burst to begin", 60*time.Second, func() bool { return len(col.All()) > 0 })

	// Meanwhile, until the last A slice falls due, clients cancel late
	// reminders and subscribe new ones.
	traffic.Go(func() {
		u := int64(users)
		for i := int64(0); time.Now().Before(t0.Add(spread)); i++ {
			select {
			case <-stopTraffic:
				return
			default:
			}
			// Cancel a user of the last two slices (due 10.8 s and later).
			cu := slices*(i%int64(users/slices)) + slices - 2 + i%2
			k := pair{UserID: cu, TemplateID: tA[cu%slices]}
			code, body := call(t, "DELETE", fmt.Sprintf("%s/v1/subscriptions/%d/%d", api, k.UserID, k.TemplateID), nil)
			switch code {
			case http.StatusNoContent:
				mu.Lock()
				cancelled[k] = true
				delete(want, k)
				mu.Unlock()
			case http.StatusConflict, http.StatusNotFound: // already sent, or cancelled before
			default:
				t.Errorf("DELETE %v: %d %v", k, code, body)
				return
			}
			// A new user subscribes to C.
			u++
			code, body = call(t, "PUT", fmt.Sprintf("%s/v1/subscriptions/%d/%d", api, u, tC), nil)
			if code != http.StatusCreated {
				t.Errorf("PUT %d/%d: %d %v", u, tC, code, body)
				return
			}
			mu.Lock()
			want[pair{UserID: u, TemplateID: tC}] = true
			mu.Unlock()
		}
	})
	for _, n := range []int{12, 3, 16} {
		delivered := pushtest.Summarise(col.All()).Unique()
		setQueueCount(t, consul, n)
		began := time.Now()
		enginetest.Eventually(t, fmt.Sprintf("the move to %d queues", n), 60*time.Second, func() bool {
			st, ok, err := idx.LayoutStatus(ctx)
			return err == nil && ok && st.Stable() && st.To == n
		})
		st, _, _ := idx.LayoutStatus(ctx)
		flips = append(flips, fmt.Sprintf("→%d: %d users moved in %v, %d reminders delivered when it began",
			n, st.Moved, time.Since(began).Round(time.Millisecond), delivered))
		if n == 12 && delivered >= len(entries) {
			t.Fatalf("the first change of N came after the burst (%d delivered)", delivered)
		}
	}
	close(stopTraffic)
	traffic.Wait()
	for _, f := range flips {
		t.Log(f)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d active reminders, %d cancelled during the burst", len(want), len(cancelled))
	if len(cancelled) == 0 {
		t.Fatal("no cancel landed during the burst")
	}

	enginetest.Eventually(t, "every reminder delivered", 120*time.Second, func() bool {
		return pushtest.Summarise(col.All()).Unique() >= len(want)
	})
	r := checkDelivered(t, "R2/R6", col, want, cancelled)
	// Merges intact: every user with both A and B active got them in one push.
	together := map[int64]bool{}
	for _, g := range col.All() {
		if !g.DueAt.Equal(g.Items[0].PushAt) {
			t.Fatalf("R4: push %s due %v, earliest item %v", g.ID, g.DueAt, g.Items[0].PushAt)
		}
		if len(g.Items) == 2 {
			together[g.UserID] = true
		}
	}
	for u := range merges {
		if want[pair{UserID: u, TemplateID: tA[u%slices]}] && !together[u] {
			t.Fatalf("R6: user %d's A and B reminders, 2 s apart, did not arrive in one push", u)
		}
	}
	t.Logf("%d deliveries, %d repeats, %d merged pushes", r.Deliveries, r.Repeats, len(together))

	// The queues a smaller N left behind drain and retire: 16 queues, all in use.
	enginetest.Eventually(t, "the layout to settle at 16", 60*time.Second, func() bool {
		st, ok, err := idx.LayoutStatus(ctx)
		return err == nil && ok && st.Stable() && st.To == 16 && st.Span == 16
	})
}

// TestConsulOutageKeepsPushing: with Consul unreachable a worker keeps the
// last N and goes on pushing; when Consul returns, it registers again.
func TestConsulOutageKeepsPushing(t *testing.T) {
	e := newEnv(t)
	agent := enginetest.StartConsul(t)
	e.consul = agent.Addr
	consul, err := cluster.New(cluster.Config{Addr: e.consul, Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer consul.Close()
	setQueueCount(t, consul, 4)
	w := e.startWorker(t, "w1")
	api := "http://" + w.addr
	registered := func() bool {
		ws, err := consul.Workers(context.Background(), e.service)
		return err == nil && len(ws) == 1 && ws[0].Status == cluster.StatusPassing
	}
	enginetest.Eventually(t, "w1 registered", 30*time.Second, registered)

	push := time.Now().Add(8 * time.Second).Truncate(time.Second)
	code, body := call(t, "POST", api+"/v1/templates", map[string]any{
		"name": "outage", "type": "fixed", "value": 500, "stock": 1000,
		"grab_start": ms(push.Add(time.Minute)), "grab_end": ms(push.Add(time.Hour)), "valid_days": 7,
	})
	if code != http.StatusCreated {
		t.Fatalf("create template: %d %v", code, body)
	}
	tid := int64(body["id"].(float64))
	const users = 200
	for u := 1; u <= users; u++ {
		if code, body := call(t, "PUT", fmt.Sprintf("%s/v1/subscriptions/%d/%d", api, u, tid), nil); code != http.StatusCreated {
			t.Fatalf("PUT %d: %d %v", u, code, body)
		}
	}
	col, err := pushtest.NewCollector(e.nsqd, e.prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer col.Stop()

	agent.Stop(t)
	if time.Now().After(push) {
		t.Fatalf("Consul stopped only after the reminders fell due; the machine is too slow for this test's margins")
	}
	enginetest.Eventually(t, "every reminder pushed during the outage", 60*time.Second, func() bool {
		return pushtest.Summarise(col.All()).Unique() == users
	})
	if r := pushtest.Summarise(col.All()); len(r.IDConflicts) > 0 {
		t.Fatalf("reminders under two push_ids: %v", r.IDConflicts)
	}
	metrics := func() string {
		resp, err := http.Get(api + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if m := metrics(); !strings.Contains(m, "couponpush_queue_count 4\n") || !strings.Contains(m, "couponpush_resize_coordinator ") {
		t.Fatalf("queue count during the outage is not the last known 4:\n%s", m)
	}

	agent.Restart(t)
	enginetest.Eventually(t, "w1 registered again", 60*time.Second, registered)
}
