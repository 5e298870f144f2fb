package worker_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"couponpush/internal/enginetest"
	"couponpush/internal/pushtest"
	"couponpush/internal/seed"
	"couponpush/queue"
	"couponpush/worker"
)

// dumpQueues logs the index's state, to tell why a reminder did not arrive.
func dumpQueues(t *testing.T, rdb *redis.Client, prefix string, n int) {
	ctx := context.Background()
	next, _ := rdb.ZRangeWithScores(ctx, prefix+":next", 0, -1).Result()
	t.Logf("next: %v (now %d)", next, time.Now().UnixMilli())
	for q := 0; q < n; q++ {
		tag := fmt.Sprintf("%s:{%s:q%d}:", prefix, prefix, q)
		due, _ := rdb.ZCard(ctx, tag+"due").Result()
		first, _ := rdb.ZRangeWithScores(ctx, tag+"due", 0, 0).Result()
		flight, _ := rdb.ZCard(ctx, tag+"flight").Result()
		marks, _ := rdb.ZCard(ctx, tag+"marks").Result()
		lease, _ := rdb.PTTL(ctx, tag+"lease").Result()
		t.Logf("q%d: due %d first %v flight %d marks %d lease ttl %v", q, due, first, flight, marks, lease)
	}
}

func TestMain(m *testing.M) { enginetest.Main(m) }

// env is one test's engines and names, shared by its worker processes.
type env struct {
	redis, dsn, nsqd, consul, prefix string
	service                          string // Consul service name: no underscores
	bin                              string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	tcp, _ := enginetest.NSQD(t)
	e := &env{
		redis:  enginetest.RedisAddr(t),
		dsn:    enginetest.MySQL(t),
		nsqd:   tcp,
		consul: enginetest.Consul(t),
		prefix: enginetest.Prefix(t),
		bin:    buildWorker(t),
	}
	e.service = strings.ToLower(strings.ReplaceAll(e.prefix, "_", "-"))
	return e
}

// binary is a command of the module built once per test binary.
type binary struct {
	once sync.Once
	path string
	err  error
}

// build builds pkg with -race and the extra go build flags into a
// temporary directory, once, and returns the path.
func (b *binary) build(t *testing.T, pkg string, flags ...string) string {
	t.Helper()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "couponpush-"+filepath.Base(pkg)+"-bin")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, filepath.Base(pkg))
		args := append(append([]string{"build", "-race"}, flags...), "-o", b.path, pkg)
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

var workerBin, adminBin binary

// buildWorker builds cmd/worker once per test binary, with -race, so the
// processes under test are checked as strictly as the tests, and with
// -tags failpoint, so FailpointEnv can arm its fault.
func buildWorker(t *testing.T) string {
	return workerBin.build(t, "couponpush/cmd/worker", "-tags", "failpoint")
}

// buildAdmin builds cmd/scheduler-admin once per test binary, with -race.
func buildAdmin(t *testing.T) string { return adminBin.build(t, "couponpush/cmd/scheduler-admin") }

// exited reports whether p's process has exited (taking its exit status).
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// proc is one worker process.
type proc struct {
	id   string
	addr string
	ops  string // the ops listener
	cmd  *exec.Cmd
	log  *lockedWriter // what it printed
	done chan error
}

func (e *env) startWorker(t *testing.T, id string, extra ...string) *proc {
	t.Helper()
	return e.startWorkerEnv(t, id, nil, extra...)
}

// startWorkerEnv starts a worker with extra environment variables.
func (e *env) startWorkerEnv(t *testing.T, id string, environ []string, extra ...string) *proc {
	t.Helper()
	p := &proc{id: id, addr: enginetest.FreeAddr(t), ops: enginetest.FreeAddr(t), log: &lockedWriter{w: &bytes.Buffer{}}, done: make(chan error, 1)}
	args := append([]string{
		"-redis-addr", e.redis, "-mysql-dsn", e.dsn, "-nsqd-tcp", e.nsqd, "-consul-addr", e.consul,
		"-redis-prefix", e.prefix, "-consul-prefix", e.prefix, "-topic", e.prefix,
		"-http-addr", p.addr, "-ops-addr", p.ops, "-worker-id", id, "-service-name", e.service,
		"-lease", "2s", "-lease-renew", "500ms", "-log-level", "warn", "-auth", "off",
		// The tests drive load from one IP (loopback); the limits are
		// proven in abuse/ and httpapi/.
		"-rate-limits", "off",
	}, extra...)
	p.cmd = exec.Command(e.bin, args...)
	p.cmd.Env = append(os.Environ(), environ...)
	out := p.log
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("worker %s log:\n%s", id, out.String())
		}
	})
	enginetest.Eventually(t, "worker "+id+" ready", 60*time.Second, func() bool {
		select {
		case err := <-p.done:
			t.Fatalf("worker %s exited at start-up: %v\n%s", id, err, out.String())
		default:
		}
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func call(t *testing.T, method, url string, body any) (int, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// checkDelivered fails t unless every wanted reminder arrived, no cancelled
// one did, none arrived under two push_ids and nothing else arrived; rule
// names the invariants at stake. It returns the summary.
func checkDelivered(t *testing.T, rule string, col *pushtest.Collector, want, cancelled map[pushtest.Pair]bool) pushtest.Report {
	t.Helper()
	r := pushtest.Summarise(col.All())
	for k := range want {
		if len(r.Reminders[k]) == 0 {
			t.Fatalf("%s: reminder %v never delivered", rule, k)
		}
	}
	for k := range cancelled {
		if len(r.Reminders[k]) > 0 {
			t.Fatalf("%s: reminder %v delivered after its cancel answered 204", rule, k)
		}
	}
	if len(r.IDConflicts) > 0 {
		t.Fatalf("%s: %d reminders delivered under more than one push_id, e.g. %v", rule, len(r.IDConflicts), r.IDConflicts[0])
	}
	if r.Unique() != len(want) {
		t.Fatalf("%s: delivered %d distinct reminders, want %d", rule, r.Unique(), len(want))
	}
	return r
}

func ms(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// TestKillOneOfThreeWorkersMidBurst proves R1, R2, R4, R5 and R7 end to end:
// three worker processes push a 50,000-reminder burst, one is killed with
// SIGKILL in the middle (between a publish and its ack, so its chunk must
// be redelivered), and still every active reminder arrives, no cancelled
// one does, merges hold, and every repeat carries the same push_id.
func TestKillOneOfThreeWorkersMidBurst(t *testing.T) {
	e := newEnv(t)
	const reminders = 50_000
	// The default lease (1 s, renewed every 250 ms), whose takeover this
	// test measures.
	flags := []string{"-pop-batch", "200", "-slots", "2", "-lease", "1s", "-lease-renew", "250ms"}
	workers := []*proc{
		e.startWorker(t, "w1", flags...),
		// w2 SIGKILLs itself after nsqd accepted its 20th chunk and before
		// acking it: mid-burst (about a fifth in), in the one window that forces a redelivery.
		e.startWorkerEnv(t, "w2", []string{worker.FailpointEnv + "=crash-before-ack:20"}, flags...),
		e.startWorker(t, "w3", flags...),
	}
	api := "http://" + workers[0].addr

	// Reminders fall due over a few seconds from T0, far enough ahead that
	// subscribing finishes first; template B's reminders are 3 s after A's,
	// inside the merge window, for every fifth user.
	t0 := time.Now().Add(15 * time.Second).Truncate(time.Second)
	const spread = 6 * time.Second
	mk := func(name string, grab time.Time) int64 {
		code, body := call(t, "POST", api+"/v1/templates", map[string]any{
			"name": name, "type": "fixed", "value": 500, "threshold_cents": 0, "stock": 1000000,
			"grab_start": ms(grab), "grab_end": ms(grab.Add(time.Hour)), "valid_days": 7,
		})
		if code != http.StatusCreated {
			t.Fatalf("create template: %d %v", code, body)
		}
		return int64(body["id"].(float64))
	}
	// Users are spread over the window by one template per 500 ms slice.
	const slices = 10
	var tA [slices]int64
	for i := range tA {
		tA[i] = mk(fmt.Sprintf("A%d", i), t0.Add(time.Minute+time.Duration(i)*spread/slices))
	}
	tB := mk("B", t0.Add(time.Minute+3*time.Second))

	type pair = pushtest.Pair
	want := map[pair]bool{}
	cancelled := map[pair]bool{}
	users := reminders * 5 / 6 // 5/6 of the users have one reminder, 1/5 of them a second: 50,000 reminders

	// Subscriptions are written as the subscription service writes a new
	// one (a pending row at version 1, then its index entry), in bulk (see
	// internal/seed), so a slow machine can load 50,000 before they fall
	// due; the service's own
	// paths are proven in subscription/ and httpapi/, and the cancels below
	// go through the API. Emitting is paused meanwhile, so a slow load only
	// makes the burst denser, never partial.
	db, err := sql.Open("mysql", e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rdb := redis.NewClient(&redis.Options{Addr: e.redis, PoolSize: 64})
	defer rdb.Close()
	idx, err := queue.New(rdb, queue.Options{Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := idx.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	grab := map[int64]time.Time{tB: t0.Add(time.Minute + 3*time.Second)}
	for i, id := range tA {
		grab[id] = t0.Add(time.Minute + time.Duration(i)*spread/slices)
	}
	var entries []queue.Entry
	for u := int64(1); u <= int64(users); u++ {
		tids := []int64{tA[u%slices]}
		if u%5 == 0 {
			tids = append(tids, tB)
		}
		for _, tid := range tids {
			entries = append(entries, queue.Entry{UserID: u, TemplateID: tid, PushAt: grab[tid].Add(-time.Minute), Version: 1})
			want[pair{UserID: u, TemplateID: tid}] = true
		}
	}
	if err := seed.Subscriptions(ctx, db, idx.NewRouter(func() int { return 16 }), 32, entries); err != nil {
		t.Fatal(err)
	}
	t.Logf("subscribed %d reminders; %v before the burst", len(want), time.Until(t0).Round(time.Millisecond))
	// Cancel every 50th user's A reminder (R2).
	for u := int64(50); u <= int64(users); u += 50 {
		k := pair{UserID: u, TemplateID: tA[u%slices]}
		code, body := call(t, "DELETE", fmt.Sprintf("%s/v1/subscriptions/%d/%d", api, u, k.TemplateID), nil)
		if code != http.StatusNoContent {
			t.Fatalf("DELETE %v: %d %v", k, code, body)
		}
		delete(want, k)
		cancelled[k] = true
	}
	t.Logf("%d active reminders, %d cancelled; burst at %v", len(want), len(cancelled), t0)

	col, err := pushtest.NewCollector(e.nsqd, e.prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer col.Stop()

	if err := idx.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	var killedAt time.Time
	enginetest.Eventually(t, "w2 to kill itself mid-burst", 90*time.Second, func() bool {
		if !workers[1].exited() {
			return false
		}
		killedAt = time.Now()
		return true
	})
	// Its queues are taken over once their leases run out.
	held := heldBy(t, idx, 16, "w2")
	if len(held) == 0 {
		t.Fatal("w2 died holding no lease")
	}
	atKill := pushtest.Summarise(col.All()).Unique()
	enginetest.Eventually(t, "w2's queues taken over", 30*time.Second, func() bool { return takenOver(t, idx, 16, "w2", held) })
	t.Logf("w2's queues %v taken over %v after it died", keys(held), time.Since(killedAt).Round(time.Millisecond))
	t.Logf("w2 killed itself with %d of %d reminders delivered", atKill, len(want))
	if atKill >= len(want) {
		t.Fatalf("the kill came after the burst (%d delivered)", atKill)
	}

	t.Cleanup(func() {
		if t.Failed() {
			dumpQueues(t, rdb, e.prefix, 16)
		}
	})
	enginetest.Eventually(t, "every reminder delivered", 90*time.Second, func() bool { return pushtest.Summarise(col.All()).Unique() >= len(want) })
	t.Logf("burst complete %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	r := checkDelivered(t, "R1/R2/R5/R7", col, want, cancelled)
	merged := 0
	for _, g := range col.All() {
		if len(g.Items) == 2 {
			merged++
		}
		if !g.DueAt.Equal(g.Items[0].PushAt) {
			t.Fatalf("R4: push %s due %v, earliest item %v", g.ID, g.DueAt, g.Items[0].PushAt)
		}
	}
	if merged == 0 {
		t.Fatalf("no merged pushes; users with A and B reminders 3 s apart should get one push")
	}
	t.Logf("%d deliveries, %d repeats (same push_id), %d merged", r.Deliveries, r.Repeats, merged)
	if r.Repeats == 0 {
		t.Fatalf("R5/R7: the chunk w2 published but never acked was not redelivered")
	}

	// MySQL learns every reminder as sent under the push_id that carried it,
	// including the killed worker's (an orphaned ack is marked by a sweep).
	enginetest.Eventually(t, "sent-marks in MySQL", 90*time.Second, func() bool {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM subscriptions WHERE status = 'sent'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == len(want)
	})
	rows, err := db.Query("SELECT user_id, template_id, push_id FROM subscriptions WHERE status = 'sent'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k pair
		var id string
		if err := rows.Scan(&k.UserID, &k.TemplateID, &id); err != nil {
			t.Fatal(err)
		}
		if ids := r.Reminders[k]; len(ids) == 0 || ids[0] != id {
			t.Fatalf("reminder %v marked sent as %s, delivered as %v", k, id, ids)
		}
	}

	// The survivors' /metrics show the work they did.
	resp, err := http.Get("http://" + workers[0].addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# TYPE couponpush_pushes_published_total counter", "# TYPE couponpush_push_lateness_seconds histogram", "couponpush_queue_count 16"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(string(body), "couponpush_pushes_published_total 0\n") {
		t.Fatalf("/metrics says w1 published nothing:\n%s", body)
	}

	// SIGTERM drains and deregisters.
	for _, w := range []*proc{workers[0], workers[2]} {
		if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-w.done:
			if err != nil {
				t.Fatalf("worker %s exit after SIGTERM: %v", w.id, err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("worker %s did not exit after SIGTERM", w.id)
		}
	}
	// The drained workers left the catalog; only the killed one remains
	// (critical once its TTL lapses) until Consul reaps it.
	resp, err = http.Get("http://" + e.consul + "/v1/catalog/service/" + e.service)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var catalog []struct{ ServiceID string }
	if err := json.NewDecoder(resp.Body).Decode(&catalog); err != nil {
		t.Fatal(err)
	}
	for _, en := range catalog {
		if en.ServiceID != "w2" {
			t.Fatalf("worker %s still registered after SIGTERM: %v", en.ServiceID, catalog)
		}
	}
}
