package console_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	_ "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"couponpush/client"
	"couponpush/cluster"
	"couponpush/config"
	"couponpush/internal/devtoken"
	"couponpush/internal/enginetest"
	"couponpush/internal/seed"
	"couponpush/queue"
	"couponpush/worker"
)

// burstUsers is the size of the burst the browser watches: a few thousand,
// as the machine's two shared cores allow.
const burstUsers = 3000

// artifactsDir is where the browser test saves its screenshots:
// $COUPONPUSH_ARTIFACTS, or couponpush/artifacts/console under the user's
// cache directory (outside the checkout).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("COUPONPUSH_ARTIFACTS")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(cache, "couponpush", "artifacts")
	}
	dir = filepath.Join(dir, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium finds the browser; the test fails (never skips) without it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run scripts/engines.sh install (apt-get install chromium)")
	return ""
}

// TestBrowser drives the console in headless Chromium on two real workers
// during a real burst: it logs in with the operator token, reads N, watches
// the drop's published count rise with its forecast, pauses and resumes
// through the confirm step, and checks the cluster and the audit log.
func TestBrowser(t *testing.T) {
	browserPath := chromium(t)
	ctx := context.Background()
	prefix := enginetest.Prefix(t)
	dsn := enginetest.MySQL(t)
	nsqd, _ := enginetest.NSQD(t)
	redisAddr, consulAddr := enginetest.RedisAddr(t), enginetest.Consul(t)
	service := strings.ToLower(strings.ReplaceAll(prefix, "_", "-"))
	tokens, err := devtoken.New()
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	consul, err := cluster.New(cluster.Config{Addr: consulAddr, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(consul.Close)
	if ok, err := consul.SetQueueCount(ctx, n, 0); err != nil || !ok {
		t.Fatalf("set N: %v %v", ok, err)
	}

	var workers []*worker.Worker
	var apiAddr string
	for i := range 2 {
		addr := enginetest.FreeAddr(t)
		wc := config.Worker{
			HTTPAddr: addr, OpsAddr: "127.0.0.1:0", RedisAddrs: []string{redisAddr}, RedisPrefix: prefix,
			MySQLDSN: dsn, NSQDAddr: nsqd, Topic: prefix, ConsulAddr: consulAddr, ConsulPrefix: prefix,
			ServiceName: service, WorkerID: fmt.Sprintf("%s-w%d", prefix, i+1), DefaultQueueCount: n,
			OperatorToken: config.Secret(tokens.Operator), JWTHS256Secret: config.Secret(tokens.Secret), RateLimits: config.RateLimitsOff,
		}.WithDefaults()
		if err := wc.Validate(); err != nil {
			t.Fatal(err)
		}
		w, err := worker.Start(ctx, wc, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := w.Stop(); err != nil {
				t.Error(err)
			}
		})
		workers = append(workers, w)
		if i == 0 {
			apiAddr = addr
		}
	}
	consoleURL := "http://" + workers[0].OpsAddr() + "/console/"

	// The drop: a template whose reminders fall due over ~15 s from a few
	// seconds from now, well before its grab start.
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { _ = rdb.Close() })
	qcl, err := queue.New(rdb, queue.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	now := time.Now().UTC()
	first, spread := now.Add(8*time.Second), 15*time.Second
	grabStart := first.Add(spread + 60*time.Second)
	api, err := client.New(client.Config{BaseURL: "http://" + apiAddr, Token: tokens.Operator})
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := api.CreateTemplate(ctx, client.TemplateDraft{Name: "browser drop", Type: client.TypeFixed, Value: 500, Stock: 1000,
		GrabStart: grabStart, GrabEnd: grabStart.Add(time.Hour), ValidDays: 7})
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]queue.Entry, burstUsers)
	for i := range entries {
		entries[i] = queue.Entry{UserID: int64(1000 + i), TemplateID: tpl.ID,
			PushAt: first.Add(time.Duration(i) * spread / burstUsers).Truncate(time.Millisecond)}
	}
	router := qcl.NewRouter(func() int { return n })
	if _, err := router.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := seed.Subscriptions(ctx, db, router, 8, entries); err != nil {
		t.Fatal(err)
	}

	// The browser.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browserPath),
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	bctx, cancelTimeout := context.WithTimeout(bctx, 4*time.Minute)
	defer cancelTimeout()
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("browser: %s: %v", what, err)
		}
	}
	// text reads an element's text at once ("" when it is absent), so a
	// poll never blocks on a page that is still loading.
	text := func(sel string) string {
		t.Helper()
		rctx, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		s, err := chromedp.Run(rctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
		if err != nil {
			t.Logf("browser: read %s: %v", sel, err)
			return ""
		}
		return strings.TrimSpace(s)
	}
	present := func(what, sel string) {
		t.Helper()
		enginetest.Eventually(t, what, time.Minute, func() bool {
			rctx, cancel := context.WithTimeout(bctx, 10*time.Second)
			defer cancel()
			ok, err := chromedp.Run(rctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.readyState === "complete" && document.querySelector(%q) !== null`, sel)))
			return err == nil && ok
		})
	}
	waitText := func(what, sel string, limit time.Duration, ok func(string) bool) string {
		t.Helper()
		var last string
		enginetest.Eventually(t, what, limit, func() bool {
			last = text(sel)
			return ok(last)
		})
		return last
	}
	dir := artifactsDir(t)
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Fatalf("browser: screenshot %s: %v", name, err)
		}
		path := filepath.Join(dir, name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
	number := func(s string) int64 {
		v, _ := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
		return v
	}

	// Log in: the console sends a browser without a session to its form.
	run("open the console", chromedp.Navigate(consoleURL))
	present("the login form", "#token")
	shot("1-login")
	run("log in with a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-an-operator-token"), chromedp.Click(chromedp.CSS("#login-submit")))
	present("the refusal", "#login-error")
	run("log in", chromedp.SendKeys(chromedp.CSS("#token"), tokens.Operator), chromedp.Click(chromedp.CSS("#login-submit")))
	present("the console page", "#queues")

	// N, as Consul holds it.
	waitText("the queue count", "#queue-count", 30*time.Second, func(s string) bool { return s == strconv.Itoa(n) })
	waitText("both workers", "#worker-count", 30*time.Second, func(s string) bool { return s == "2" })

	// The drop's published count rises during the burst, with a forecast.
	drop := fmt.Sprintf("#drop-%d", tpl.ID)
	published := drop + " .fig.published b"
	firstSeen := number(waitText("the first pushes published", published, time.Minute, func(s string) bool { return number(s) > 0 }))
	waitText("the published count rising", published, time.Minute, func(s string) bool { return number(s) > firstSeen })
	forecast := waitText("a forecast with a measured rate", drop+" .forecast", 30*time.Second, func(s string) bool {
		return s == "on time" || s == "will miss" || s == "drained"
	})
	t.Logf("forecast while publishing: %s (first seen published %d)", forecast, firstSeen)
	shot("2-burst")

	// Pause through the UI: prepare, confirm, and the cluster pauses.
	run("prepare pause", chromedp.Click(chromedp.CSS("#btn-pause")))
	present("the confirm step", "#confirm-box:not([hidden])")
	if s := text("#confirm-summary"); !strings.Contains(s, prefix) {
		t.Fatalf("the confirm step says %q, not which prefix it pauses", s)
	}
	if paused, err := qcl.Paused(ctx); err != nil || paused {
		t.Fatalf("paused before the confirm: %v %v", paused, err)
	}
	shot("3-confirm-pause")
	run("confirm pause", chromedp.Click(chromedp.CSS("#confirm-yes")))
	waitText("the pause result", "#action-result", 30*time.Second, func(s string) bool { return strings.HasPrefix(s, "pause: ok") })
	if paused, err := qcl.Paused(ctx); err != nil || !paused {
		t.Fatalf("not paused after the confirm: %v %v", paused, err)
	}
	waitText("the paused badge", "#state", 30*time.Second, func(s string) bool { return s == "PAUSED" })

	// Resume the same way.
	run("prepare resume", chromedp.Click(chromedp.CSS("#btn-resume")))
	present("the confirm step", "#confirm-box:not([hidden])")
	run("confirm resume", chromedp.Click(chromedp.CSS("#confirm-yes")))
	waitText("the resume result", "#action-result", 30*time.Second, func(s string) bool { return strings.HasPrefix(s, "resume: ok") })
	if paused, err := qcl.Paused(ctx); err != nil || paused {
		t.Fatalf("still paused after resume: %v %v", paused, err)
	}

	// The audit log lists both, in the page and in MySQL.
	waitText("the audit log", "#audit tbody", 30*time.Second, func(s string) bool {
		return strings.Contains(s, "pause") && strings.Contains(s, "resume") && !strings.Contains(s, "started")
	})
	rows, err := db.QueryContext(ctx, "SELECT action, result, operator FROM console_audit ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var action, result, operator string
		if err := rows.Scan(&action, &result, &operator); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(operator, tokens.Operator) || !strings.HasPrefix(operator, "op:") {
			t.Fatalf("audit names the operator %q", operator)
		}
		got = append(got, action+":"+result)
	}
	rows.Close()
	if strings.Join(got, " ") != "pause:ok resume:ok" {
		t.Fatalf("audit rows: %v", got)
	}

	// Every reminder goes out once resumed.
	waitText("the burst published", drop+" .fig.pending b", 2*time.Minute, func(s string) bool { return number(s) == 0 && s != "" })
	run("trace a user", chromedp.SendKeys(chromedp.CSS("#user-id"), "1000"), chromedp.Click(chromedp.CSS("#user-form button")))
	waitText("the user's trace", "#user", 30*time.Second, func(s string) bool { return strings.Contains(s, "sent") })
	shot("4-after")
	if out := os.Getenv("COUPONPUSH_CONSOLE_SCREENSHOT"); out != "" {
		data, err := os.ReadFile(filepath.Join(dir, "2-burst.png"))
		if err == nil {
			err = os.WriteFile(out, data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
