package httpapi

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"couponpush/migrate"
	"couponpush/queue"
	"couponpush/subscription"
	"couponpush/template"
)

var (
	base      = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC) // the services' clock
	grabStart = base.Add(time.Hour)
)

// fakeIndex is an in-memory Index that can be told to fail or to report a
// reminder in flight.
type fakeIndex struct {
	mu       sync.Mutex
	entries  map[[2]int64]queue.Entry
	inFlight map[[2]int64]bool
	down     bool
}

var errIndexDown = errors.New("fake index: connection refused")

func newFakeIndex() *fakeIndex {
	return &fakeIndex{entries: map[[2]int64]queue.Entry{}, inFlight: map[[2]int64]bool{}}
}

func (f *fakeIndex) Add(_ context.Context, e queue.Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errIndexDown
	}
	k := [2]int64{e.UserID, e.TemplateID}
	if cur, ok := f.entries[k]; !ok || cur.Version < e.Version {
		f.entries[k] = e
	}
	return nil
}

func (f *fakeIndex) Cancel(_ context.Context, e queue.Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errIndexDown
	}
	k := [2]int64{e.UserID, e.TemplateID}
	if f.inFlight[k] {
		return queue.ErrInFlight
	}
	delete(f.entries, k)
	return nil
}

func (f *fakeIndex) setDown(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }
func (f *fakeIndex) setInFlight(user, template int64) {
	f.mu.Lock()
	f.inFlight[[2]int64{user, template}] = true
	f.mu.Unlock()
}

// fixture is the API over a fresh MariaDB database and a fake index.
type fixture struct {
	db    *sql.DB
	idx   *fakeIndex
	store *template.Store
	subs  *subscription.Service
	srv   *httptest.Server
	tpl   template.Template // grab_start = grabStart
	// token, when set, is sent as the bearer token of every do.
	token string
}

func newFixture(t *testing.T, edit func(*Config)) *fixture {
	t.Helper()
	return newFixtureOf(t, func(_ *fixture, c *Config) {
		if edit != nil {
			edit(c)
		}
	})
}

// newFixtureOf is newFixture with an edit that sees the fixture's database
// and store.
func newFixtureOf(t *testing.T, edit func(*fixture, *Config)) *fixture {
	t.Helper()
	db, err := sql.Open("mysql", newDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := migrate.Up(context.Background(), db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	f := &fixture{db: db, idx: newFakeIndex()}
	if f.store, err = template.NewStore(db, template.StoreConfig{}); err != nil {
		t.Fatal(err)
	}
	cache, err := template.NewCache(f.store, template.CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if f.subs, err = subscription.NewService(db, cache, f.idx, subscription.Config{Now: func() time.Time { return base }}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.subs.Close() })
	cfg := Config{
		Templates:     cache,
		Subscriptions: f.subs,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxBodyBytes:  4096,
		AuthOff:       true, // the identity tests (auth_test.go) turn it on
	}
	edit(f, &cfg)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	days := 7
	f.tpl, err = f.store.Create(context.Background(), template.Draft{Name: "drop", Type: template.Fixed, Value: 500,
		Stock: 100, GrabStart: grabStart, GrabEnd: grabStart.Add(time.Hour), ValidDays: &days})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// code returns error.code of an error answer.
func (r response) code() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (f *fixture) do(t *testing.T, method, path, contentType, body string) response {
	t.Helper()
	return f.doAs(t, f.token, method, path, contentType, body)
}

// doAs is do with token as the bearer token ("" sends none).
func (f *fixture) doAs(t *testing.T, token, method, path, contentType, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	isJSON := res.Header.Get("Content-Type") == "application/json"
	if len(bytes.TrimSpace(raw)) > 0 && (isJSON || r.status >= 400) {
		if err := json.Unmarshal(raw, &r.body); err != nil || !isJSON {
			t.Fatalf("%s %s: answer is not a JSON object (Content-Type %q): %q", method, path, res.Header.Get("Content-Type"), raw)
		}
	}
	if r.status >= 400 {
		e, ok := r.body["error"].(map[string]any)
		if !ok || e["code"] == "" || e["message"] == "" {
			t.Fatalf("%s %s: error answer %q lacks error.code/error.message", method, path, raw)
		}
	}
	return r
}

func (f *fixture) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := f.db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
