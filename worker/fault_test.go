package worker_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/config"
	"couponpush/internal/enginetest"
	"couponpush/queue"
	"couponpush/template"
	"couponpush/worker"
)

// The request bounds of the fault tests: a short deadline, and the margin
// an answer may take beyond it on a loaded machine. The bound is what is
// tested (nothing hangs until the engine comes back), not speed.
const (
	faultDeadline = 2 * time.Second
	answerMargin  = 5 * time.Second
)

// faultEnv is one in-process worker (API role) on a MariaDB of the test's
// own, which the test freezes, and the shared Redis and Consul.
type faultEnv struct {
	mysql  *enginetest.Process
	db     *sql.DB // the test's own pool on the worker's database
	rdb    *redis.Client
	prefix string
	base   string       // http://host:port of the worker
	client *http.Client // times out at faultDeadline + answerMargin
	log    *lockedWriter
}

func newFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	proc, dsn := enginetest.StartMySQL(t)
	e := &faultEnv{mysql: proc, prefix: enginetest.Prefix(t), log: &lockedWriter{w: &bytes.Buffer{}}}
	e.rdb = redis.NewClient(&redis.Options{Addr: enginetest.RedisAddr(t)})
	t.Cleanup(func() { _ = e.rdb.Close() })
	addr := enginetest.FreeAddr(t)
	wc := config.Worker{
		Roles: []string{config.RoleAPI}, HTTPAddr: addr, OpsAddr: "127.0.0.1:0",
		RedisAddrs: []string{enginetest.RedisAddr(t)}, RedisPrefix: e.prefix, MySQLDSN: dsn,
		ConsulAddr: enginetest.Consul(t), ConsulPrefix: e.prefix,
		ServiceName: strings.ToLower(strings.ReplaceAll(e.prefix, "_", "-")), WorkerID: e.prefix,
		Auth: config.AuthOff, RateLimits: "off",
		RequestTimeout: config.Duration(faultDeadline),
	}.WithDefaults()
	if err := wc.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := worker.Start(context.Background(), wc, slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("worker log:\n%s", e.log.String())
		}
	})
	// Runs before the worker stops: a test that failed frozen thaws first.
	t.Cleanup(func() { proc.Thaw(t) })
	e.base = "http://" + addr
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	e.client = &http.Client{Transport: tr, Timeout: faultDeadline + answerMargin}
	if e.db, err = sql.Open("mysql", dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.db.Close() })
	return e
}

// answer is one HTTP answer and when it came.
type answer struct {
	status     int
	code       string // error.code of an error answer
	body       map[string]any
	start, end time.Time
}

func (a answer) String() string {
	return fmt.Sprintf("%d %s after %v", a.status, a.code, a.end.Sub(a.start).Round(time.Millisecond))
}

// send makes one request; an answer that does not come within the
// client's timeout (deadline + margin) fails the test.
func (e *faultEnv) send(t *testing.T, ctx context.Context, method, path string, body any) answer {
	t.Helper()
	a, err := e.try(ctx, method, path, body)
	if err != nil {
		t.Errorf("%s %s: no answer: %v", method, path, err)
	}
	return a
}

func (e *faultEnv) try(ctx context.Context, method, path string, body any) (answer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.base+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	a := answer{start: time.Now()}
	res, err := e.client.Do(req)
	if err != nil {
		a.end = time.Now()
		return a, fmt.Errorf("after %v: %w", a.end.Sub(a.start).Round(time.Millisecond), err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	a.end, a.status = time.Now(), res.StatusCode
	if err != nil {
		return a, err
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			return a, fmt.Errorf("answer %d is not JSON: %q", a.status, raw)
		}
	}
	if eb, ok := a.body["error"].(map[string]any); ok {
		a.code, _ = eb["code"].(string)
	}
	return a, nil
}

// must sends a request and wants status want.
func (e *faultEnv) must(t *testing.T, method, path string, body any, want int) answer {
	t.Helper()
	a := e.send(t, t.Context(), method, path, body)
	if a.status != want {
		t.Fatalf("%s %s = %v %v, want %d", method, path, a, a.body, want)
	}
	return a
}

// templates creates the two templates of a fault test: remind, whose grab
// starts in two hours (subscriptions), and drop, live now with stock
// coupons over 4 sub-stocks (claims). It then writes them to the Redis
// template tier, as the coupon role's refresh does, so claims and
// subscriptions find them while MySQL hangs.
func (e *faultEnv) templates(t *testing.T, stock int) (remind, drop int64) {
	t.Helper()
	now := time.Now().UTC()
	create := func(body map[string]any) int64 {
		a := e.must(t, "POST", "/v1/templates", body, http.StatusCreated)
		id, _ := a.body["id"].(float64)
		return int64(id)
	}
	remind = create(map[string]any{"name": "remind", "type": "fixed", "value": 100, "stock": 1,
		"grab_start": now.Add(2 * time.Hour).Format(time.RFC3339Nano), "grab_end": now.Add(3 * time.Hour).Format(time.RFC3339Nano), "valid_days": 7})
	drop = create(map[string]any{"name": "drop", "type": "fixed", "value": 100, "stock": stock, "substocks": 4,
		"grab_start": now.Add(-time.Minute).Format(time.RFC3339Nano), "grab_end": now.Add(time.Hour).Format(time.RFC3339Nano), "valid_days": 7})
	store, err := template.NewStore(e.db, template.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tiers := template.NewRedis(e.rdb, e.prefix, store)
	if n, err := tiers.Refresh(t.Context()); err != nil || n != 2 {
		t.Fatalf("writing the templates to Redis: %d, %v; want 2", n, err)
	}
	return remind, drop
}

// handled is how many requests of route the worker has finished (answered
// or given up on), from its /metrics.
func (e *faultEnv) handled(t *testing.T, route string) int {
	t.Helper()
	return e.routeMetric(t, `couponpush_http_request_seconds_count{route="`+route+`",`)
}

// serving is how many requests of route the worker is serving now.
func (e *faultEnv) serving(t *testing.T, route string) int {
	t.Helper()
	return e.routeMetric(t, `couponpush_http_requests_in_flight{route="`+route+`"}`)
}

// routeMetric sums the values of the worker's metric lines that start
// with prefix.
func (e *faultEnv) routeMetric(t *testing.T, prefix string) int {
	t.Helper()
	res, err := e.client.Get(e.base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	n := 0
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		v, err := strconv.Atoi(line[strings.LastIndexByte(line, ' ')+1:])
		if err != nil {
			t.Fatalf("metrics line %q: %v", sc.Text(), err)
		}
		n += v
	}
	return n
}

// record is what MySQL and the Redis index hold for one subscription.
type record struct {
	status  string // in MySQL; "" when there is no row
	version int64
	index   []queue.RecordEntry // every entry of the (user, template) in any queue
}

func (r record) String() string {
	var es []string
	for _, x := range r.index {
		es = append(es, fmt.Sprintf("%s@v%d", x.State, x.Version))
	}
	return fmt.Sprintf("MySQL %q v%d, index [%s]", r.status, r.version, strings.Join(es, " "))
}

// pendingOnce: pending in MySQL, and indexed exactly once, pending, at the
// row's version.
func (r record) pendingOnce() bool {
	return r.status == "pending" && len(r.index) == 1 && r.index[0].State == queue.StatePending && r.index[0].Version == r.version
}

// cancelled: cancelled in MySQL, and not pending in the index.
func (r record) cancelled() bool {
	if r.status != "cancelled" {
		return false
	}
	for _, x := range r.index {
		if x.State == queue.StatePending {
			return false
		}
	}
	return true
}

// tombstoned: the index holds a tombstone and nothing pending.
func (r record) tombstoned() bool {
	tomb := false
	for _, x := range r.index {
		switch x.State {
		case queue.StatePending:
			return false
		case queue.StateCancelled:
			tomb = true
		}
	}
	return tomb
}

// record reads one subscription from MySQL and from every queue of the
// index's layout.
func (e *faultEnv) record(t *testing.T, user, tpl int64) record {
	t.Helper()
	ctx := t.Context()
	var r record
	err := e.db.QueryRowContext(ctx, "SELECT status, version FROM subscriptions WHERE user_id = ? AND template_id = ?", user, tpl).
		Scan(&r.status, &r.version)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("reading subscription %d/%d: %v", user, tpl, err)
	}
	idx, err := queue.New(e.rdb, queue.Options{Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	l, err := idx.NewRouter(func() int { return 16 }).Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for q := range l.Span {
		es, _, err := idx.UserRecord(ctx, q, user)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range es {
			if x.TemplateID == tpl {
				r.index = append(r.index, x)
			}
		}
	}
	return r
}

// claimKeys are the Redis fields a claim leaves: its reservation on the
// user's key, and any hold on the template's sub-stocks (coupon/keys.go).
type claimKeys struct {
	resv  string   // r:<request_id> on the user key; "" when absent
	holds []string // h:<request_id> of every sub-stock that holds one
}

func (e *faultEnv) claimKeys(t *testing.T, tpl, user int64, rid string, substocks int) claimKeys {
	t.Helper()
	ctx := t.Context()
	var k claimKeys
	userKey := fmt.Sprintf("%s:{%s:t%d:u%d}", e.prefix, e.prefix, tpl, user)
	k.resv, _ = e.rdb.HGet(ctx, userKey, "r:"+rid).Result()
	for i := range substocks {
		if h, err := e.rdb.HGet(ctx, e.subKey(tpl, i), "h:"+rid).Result(); err == nil {
			k.holds = append(k.holds, h)
		}
	}
	return k
}

func (e *faultEnv) subKey(tpl int64, i int) string {
	return fmt.Sprintf("%s:{%s:t%d:s%d}", e.prefix, e.prefix, tpl, i)
}

// stockAdds up: the coupons left in Redis plus those issued in MySQL
// make the template's stock, no hold is left in a sub-stock, no request_id
// has two coupons, and issued ≤ stock. It returns what it found.
func (e *faultEnv) stockAddsUp(t *testing.T, tpl int64, stock, substocks int) (issued int, why string) {
	t.Helper()
	ctx := t.Context()
	left := 0
	for i := range substocks {
		all, err := e.rdb.HGetAll(ctx, e.subKey(tpl, i)).Result()
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(all["left"])
		left += n
		for f := range all {
			if strings.HasPrefix(f, "h:") {
				return 0, fmt.Sprintf("sub-stock %d still holds %s", i, f)
			}
		}
	}
	var twice int
	if err := e.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM coupons WHERE template_id = ?", tpl).Scan(&issued); err != nil {
		t.Fatal(err)
	}
	if err := e.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT request_id FROM coupons WHERE template_id = ?
GROUP BY request_id HAVING COUNT(*) > 1) d`, tpl).Scan(&twice); err != nil {
		t.Fatal(err)
	}
	switch {
	case twice > 0:
		return issued, fmt.Sprintf("%d request_ids have two coupons", twice)
	case issued > stock:
		return issued, fmt.Sprintf("%d coupons issued of a stock of %d", issued, stock)
	case left+issued != stock:
		return issued, fmt.Sprintf("%d left in Redis + %d issued in MySQL ≠ stock %d", left, issued, stock)
	}
	return issued, ""
}

// op is one request of the freeze test and the answers that end it.
type op struct {
	method, path string
	body         any
	final        func(answer) bool
	// claim: a 503 during the freeze may say outcome_unknown (the write
	// was sent), not only unavailable.
	claim bool
}

func (o op) String() string { return o.method + " " + o.path }

func statusIn(codes ...int) func(answer) bool {
	return func(a answer) bool {
		for _, c := range codes {
			if a.status == c {
				return true
			}
		}
		return false
	}
}

// retryable: an answer that says to try again.
func retryable(a answer) bool {
	return a.status == http.StatusServiceUnavailable || (a.status == http.StatusConflict && a.code == "claim_in_progress")
}

// TestMySQLFrozenRequestsAnswerInTime freezes MySQL (SIGSTOP) while
// subscription writes and reads and claims are in flight and while more
// arrive: every request is answered within its deadline plus a margin, each
// one that arrived during the freeze with 503. After SIGCONT, retrying the
// same requests (same request_id for claims) converges: every reminder
// PUT and not DELETEd is pending and indexed exactly once, every DELETEd
// one is cancelled and not pending in the index, every claim has exactly
// one coupon, and Redis stock plus MySQL coupons make the stock.
func TestMySQLFrozenRequestsAnswerInTime(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t)
	const claims, substocks = 16, 4
	remind, drop := e.templates(t, claims)
	sub := func(u int) string { return fmt.Sprintf("/v1/subscriptions/%d/%d", u, remind) }
	// Users 1-16 subscribe before the freeze; 1-8 cancel during it.
	for u := 1; u <= 16; u++ {
		e.must(t, "PUT", sub(u), nil, http.StatusCreated)
	}

	var ops []op
	kept, cancelled := []int64{}, []int64{}
	for i := range 8 {
		u := 1 + i
		ops = append(ops, op{method: "DELETE", path: sub(u), final: statusIn(http.StatusNoContent)})
		cancelled = append(cancelled, int64(u))
		// New users 17-24, and users 9-16 again.
		for _, u := range []int{17 + i, 9 + i} {
			ops = append(ops, op{method: "PUT", path: sub(u), final: statusIn(http.StatusOK, http.StatusCreated)})
			kept = append(kept, int64(u))
		}
		ops = append(ops, op{method: "GET", path: fmt.Sprintf("/v1/subscriptions/%d", u), final: statusIn(http.StatusOK)})
		for j := range 2 {
			c := 2*i + j
			ops = append(ops, op{method: "POST", path: fmt.Sprintf("/v1/templates/%d/claims", drop), claim: true,
				body:  map[string]any{"user_id": 1000 + c, "request_id": fmt.Sprintf("c%d", c)},
				final: statusIn(http.StatusOK, http.StatusCreated)})
		}
	}

	// Sixteen clients work through the requests; MySQL freezes once four
	// have been answered, so the others are in flight, and the rest
	// arrive while it is frozen.
	answers := make([]answer, len(ops))
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		answered atomic.Int32
	)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				answers[i] = e.send(t, t.Context(), ops[i].method, ops[i].path, ops[i].body)
				answered.Add(1)
			}
		})
	}
	var freezeStart, frozen time.Time
	go func() {
		defer close(next)
		for i := range ops {
			next <- i
		}
	}()
	enginetest.Eventually(t, "four answers before the freeze", 30*time.Second, func() bool { return answered.Load() >= 4 })
	freezeStart = time.Now()
	e.mysql.Freeze(t)
	frozen = time.Now()
	wg.Wait()
	thawed := time.Now()
	e.mysql.Thaw(t)
	t.Logf("MySQL frozen for %v", thawed.Sub(frozen).Round(time.Millisecond))

	inFlight, during := 0, 0
	var retry []int
	for i, a := range answers {
		if a.status == 0 {
			continue // no answer: reported by send
		}
		if took := a.end.Sub(a.start); took > faultDeadline+answerMargin {
			t.Errorf("%v: answered after %v, beyond the deadline %v plus %v", ops[i], took, faultDeadline, answerMargin)
		}
		if a.start.Before(freezeStart) && a.end.After(frozen) {
			inFlight++
		}
		if a.start.After(frozen) && a.end.Before(thawed) {
			during++
			ok := a.status == http.StatusServiceUnavailable && (a.code == "unavailable" || ops[i].claim && a.code == "outcome_unknown")
			if !ok {
				t.Errorf("%v during the freeze: %v %v; want 503 unavailable", ops[i], a, a.body)
			}
		}
		if !ops[i].final(a) {
			retry = append(retry, i)
		}
	}
	if inFlight == 0 || during == 0 {
		t.Errorf("%d requests were in flight at the freeze and %d came during it; want some of both", inFlight, during)
	}
	t.Logf("%d requests in flight at the freeze, %d during it; %d to retry", inFlight, during, len(retry))
	if t.Failed() {
		t.FailNow()
	}

	// Retries converge.
	for _, i := range retry {
		o := ops[i]
		enginetest.Eventually(t, "a final answer to "+o.String(), 30*time.Second, func() bool {
			a := e.send(t, t.Context(), o.method, o.path, o.body)
			switch {
			case o.final(a):
				return true
			case !retryable(a):
				t.Fatalf("retried %v: %v %v", o, a, a.body)
			}
			return false
		})
	}

	var last string
	defer func() {
		if t.Failed() && last != "" {
			t.Log("last seen: " + last)
		}
	}()
	enginetest.Eventually(t, "MySQL, the index and the stock to agree", 30*time.Second, func() bool {
		last = ""
		for _, u := range kept {
			if r := e.record(t, u, remind); !r.pendingOnce() {
				last = fmt.Sprintf("user %d, PUT and kept: %v; want pending and indexed once", u, r)
				return false
			}
		}
		for _, u := range cancelled {
			if r := e.record(t, u, remind); !r.cancelled() {
				last = fmt.Sprintf("user %d, DELETEd: %v; want cancelled and not pending in the index", u, r)
				return false
			}
		}
		issued, why := e.stockAddsUp(t, drop, claims, substocks)
		if why == "" && issued != claims {
			why = fmt.Sprintf("%d coupons for %d claims answered 200/201", issued, claims)
		}
		last = why
		return why == ""
	})
}

// hangUp sends a request that the test cuts short: cancel closes the
// connection (the client hangs up); the request's error (no answer) is
// sent on done.
func (e *faultEnv) hangUp(t *testing.T, method, path string, body any) (cancel func(), done <-chan error) {
	t.Helper()
	ctx, stop := context.WithCancel(t.Context())
	d := make(chan error, 1)
	go func() {
		a, err := e.try(ctx, method, path, body)
		if err == nil {
			err = fmt.Errorf("answered %v before the hang-up", a)
		} else if !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("want the client's own cancel, got %w", err)
		} else {
			err = nil
		}
		d <- err
	}()
	t.Cleanup(stop)
	return stop, d
}

// TestHangUpMidWrite has clients hang up on a DELETE and a claim stuck in
// their MySQL step (MySQL frozen with SIGSTOP) and checks, once the
// request's bound has passed and MySQL is back, that the write was
// completed or not applied, never left half: a DELETE leaves the row
// cancelled with a tombstone in the index, or pending and indexed pending;
// a claim leaves no pending reservation and no hold in Redis. A retry
// converges.
func TestHangUpMidWrite(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t)
	const stock, substocks = 4, 4
	remind, drop := e.templates(t, stock)
	sub := func(u int) string { return fmt.Sprintf("/v1/subscriptions/%d/%d", u, remind) }
	const deleteRoute = "DELETE /v1/subscriptions/{user_id}/{template_id}"
	const claimRoute = "POST /v1/templates/{template_id}/claims"
	bound := faultDeadline + answerMargin

	// hungUp cancels a request and waits until the worker has finished
	// with it (its handler returned, by the hang-up or the deadline).
	hungUp := func(t *testing.T, route string, before int, cancel func(), done <-chan error) {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		enginetest.Eventually(t, "the worker to finish with the request it was hung up on", bound, func() bool {
			return e.handled(t, route) > before
		})
	}

	t.Run("DELETE stuck in its MySQL write completes", func(t *testing.T) {
		e.must(t, "PUT", sub(1), nil, http.StatusCreated)
		// A transaction holds the row: the DELETE reads it, writes its
		// tombstone to the index, then waits in its UPDATE.
		tx, err := e.db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		var v int64
		if err := tx.QueryRowContext(t.Context(), "SELECT version FROM subscriptions WHERE user_id = 1 AND template_id = ? FOR UPDATE", remind).Scan(&v); err != nil {
			t.Fatal(err)
		}
		before := e.handled(t, deleteRoute)
		cancel, done := e.hangUp(t, "DELETE", sub(1), nil)
		enginetest.Eventually(t, "the DELETE's tombstone in the index", bound, func() bool {
			r := e.record(t, 1, remind)
			return r.status == "pending" && r.tombstoned()
		})
		e.mysql.Freeze(t)
		hungUp(t, deleteRoute, before, cancel, done)
		e.mysql.Thaw(t)
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		var r record
		enginetest.Eventually(t, "the cut DELETE completed: cancelled in MySQL, a tombstone in the index", 30*time.Second, func() bool {
			r = e.record(t, 1, remind)
			return r.cancelled() && r.tombstoned()
		})
		e.must(t, "DELETE", sub(1), nil, http.StatusNoContent)
		if r = e.record(t, 1, remind); !r.cancelled() || !r.tombstoned() {
			t.Fatalf("after a retried DELETE: %v; want cancelled with a tombstone", r)
		}
	})

	t.Run("DELETE cut while MySQL hangs before its read is not applied", func(t *testing.T) {
		e.must(t, "PUT", sub(2), nil, http.StatusCreated)
		before := e.handled(t, deleteRoute)
		e.mysql.Freeze(t)
		cancel, done := e.hangUp(t, "DELETE", sub(2), nil)
		// Hang up only once the worker serves the DELETE (stuck before
		// or in its read): a request written but not yet read off the
		// socket, or written to a kept-alive connection the server was
		// closing (the transport then sends it again on a new one), may
		// never reach it.
		enginetest.Eventually(t, "the worker to serve the DELETE", bound, func() bool {
			return e.serving(t, deleteRoute) > 0
		})
		hungUp(t, deleteRoute, before, cancel, done)
		e.mysql.Thaw(t)
		// Nothing may complete later: the DELETE never got past its read.
		if r := e.record(t, 2, remind); !r.pendingOnce() {
			t.Fatalf("a DELETE cut before its read: %v; want pending and indexed pending (not applied)", r)
		}
		e.must(t, "DELETE", sub(2), nil, http.StatusNoContent)
		if r := e.record(t, 2, remind); !r.cancelled() || !r.tombstoned() {
			t.Fatalf("after a retried DELETE: %v; want cancelled with a tombstone", r)
		}
	})

	t.Run("claim stuck in its MySQL write leaves no reservation or hold", func(t *testing.T) {
		const user, rid = 500, "hung-up"
		claim := map[string]any{"user_id": user, "request_id": rid}
		path := fmt.Sprintf("/v1/templates/%d/claims", drop)
		before := e.handled(t, claimRoute)
		e.mysql.Freeze(t)
		cancel, done := e.hangUp(t, "POST", path, claim)
		// A hold in a sub-stock: the claim took its coupon; its MySQL
		// write comes next, into the frozen server.
		enginetest.Eventually(t, "the claim's hold in a sub-stock", bound, func() bool {
			return len(e.claimKeys(t, drop, user, rid, substocks).holds) == 1
		})
		hungUp(t, claimRoute, before, cancel, done)
		e.mysql.Thaw(t)
		var k claimKeys
		enginetest.Eventually(t, "no pending reservation and no hold once the write's bound has passed", 30*time.Second, func() bool {
			k = e.claimKeys(t, drop, user, rid, substocks)
			return len(k.holds) == 0 && (k.resv == "" || strings.HasPrefix(k.resv, "d|"))
		})
		if k.resv == "" {
			t.Log("the claim was given back (not applied)")
		} else {
			t.Logf("the claim was written after its caller left (completed): %s", k.resv)
		}
		var a answer
		enginetest.Eventually(t, "a retry with the same request_id to get its coupon", 30*time.Second, func() bool {
			a = e.send(t, t.Context(), "POST", path, claim)
			if !retryable(a) && a.status != http.StatusOK && a.status != http.StatusCreated {
				t.Fatalf("retried claim: %v %v", a, a.body)
			}
			return a.status == http.StatusOK || a.status == http.StatusCreated
		})
		if completed := k.resv != ""; completed != (a.status == http.StatusOK) {
			t.Errorf("retry answered %v; want 200 (the coupon issued) after a completed write, 201 (claimed anew) after a give-back", a)
		}
		if k = e.claimKeys(t, drop, user, rid, substocks); len(k.holds) != 0 || !strings.HasPrefix(k.resv, "d|") {
			t.Errorf("after the retry: reservation %q, holds %v; want done and none", k.resv, k.holds)
		}
		if issued, why := e.stockAddsUp(t, drop, stock, substocks); why != "" || issued != 1 {
			t.Errorf("stock after the claim: %d issued; %s", issued, why)
		}
	})
}
