package subscription

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"couponpush/migrate"
	"couponpush/template"
)

var (
	base      = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC) // the clock's start
	grabStart = base.Add(time.Hour)
)

func dur(d time.Duration) *time.Duration { return &d }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }
func (c *clock) Now() time.Time   { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)  { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// env is one isolated database with a template whose grab_start is
// grabStart.
type env struct {
	t        testing.TB
	db       *sql.DB
	dsn      string
	store    *template.Store
	cache    *template.Cache
	template template.Template
	nextUser atomic.Int64
}

func openDB(t testing.TB) (*sql.DB, string) {
	t.Helper()
	dsn := newDSN(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("open MySQL: %v", err)
	}
	db.SetMaxOpenConns(64)
	db.SetMaxIdleConns(64)
	t.Cleanup(func() { db.Close() })
	if _, err := migrate.Up(context.Background(), db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db, dsn
}

func newEnv(t testing.TB) *env {
	t.Helper()
	db, dsn := openDB(t)
	store, err := template.NewStore(db, template.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := template.NewCache(store, template.CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, dsn: dsn, store: store, cache: cache}
	e.template = e.newTemplate(t, grabStart)
	return e
}

func (e *env) newTemplate(t testing.TB, start time.Time) template.Template {
	t.Helper()
	days := 7
	tm, err := e.store.Create(context.Background(), template.Draft{Name: "drop", Type: template.Fixed, Value: 500,
		Stock: 100, GrabStart: start, GrabEnd: start.Add(time.Hour), ValidDays: &days})
	if err != nil {
		t.Fatalf("create template: %v", err)
	}
	return tm
}

func (e *env) user() int64 { return e.nextUser.Add(1) }

// service returns a service over e's database with its own clock and index.
func (e *env) service(clk *clock, idx *fakeIndex) *Service {
	s := newService(e.t, e.db, e.cache, idx, Config{Now: clk.Now})
	return s
}

// rowState is every column of a subscription row, to tell "nothing written".
type rowState struct {
	id                   int64
	pushAt               time.Time
	status               string
	version              int64
	pushID               sql.NullString
	sentAt               sql.NullTime
	createdAt, updatedAt time.Time
}

func readRow(t *testing.T, db *sql.DB, user, template int64) (rowState, bool) {
	t.Helper()
	var r rowState
	err := db.QueryRow(`SELECT id, push_at, status, version, push_id, sent_at, created_at, updated_at
FROM subscriptions WHERE user_id = ? AND template_id = ?`, user, template).
		Scan(&r.id, &r.pushAt, &r.status, &r.version, &r.pushID, &r.sentAt, &r.createdAt, &r.updatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return rowState{}, false
	}
	if err != nil {
		t.Fatalf("read row: %v", err)
	}
	return r, true
}

func countRows(t *testing.T, db *sql.DB, user, template int64) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM subscriptions WHERE user_id = ? AND template_id = ?", user, template).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

type op struct {
	name    string
	version int64
}

func opsOf(calls []indexCall) []op {
	var out []op
	for _, c := range calls {
		out = append(out, op{c.op, c.e.Version})
	}
	return out
}

func TestSubscribe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	defaultPush := grabStart.Add(-DefaultLead)
	lead10m := grabStart.Add(-10 * time.Minute)

	pending := func(lead *time.Duration) func(*testing.T, *Service, int64) {
		return func(t *testing.T, s *Service, user int64) {
			if _, _, err := s.Subscribe(ctx, user, e.template.ID, lead); err != nil {
				t.Fatalf("setup subscribe: %v", err)
			}
		}
	}
	cancelled := func(t *testing.T, s *Service, user int64) {
		pending(nil)(t, s, user)
		if err := s.Cancel(ctx, user, e.template.ID); err != nil {
			t.Fatalf("setup cancel: %v", err)
		}
	}
	sent := func(t *testing.T, s *Service, user int64) {
		pending(nil)(t, s, user)
		if err := s.MarkSent(ctx, []Sent{{UserID: user, TemplateID: e.template.ID, PushID: "p-1", SentAt: defaultPush}}); err != nil {
			t.Fatalf("setup mark sent: %v", err)
		}
	}

	tests := []struct {
		name        string
		setup       func(*testing.T, *Service, int64)
		at          time.Time // the clock at the call; zero = base+1m
		template    int64     // zero = e.template
		lead        *time.Duration
		wantErr     error
		wantCreated bool
		wantStatus  Status
		wantVersion int64
		wantPushAt  time.Time
		wantOps     []op // every index call for the pair, setup included
		wantWrite   bool // the call changes the row
	}{
		{name: "new", wantCreated: true, wantStatus: StatusPending, wantVersion: 1, wantPushAt: defaultPush,
			wantOps: []op{{"add", 1}}, wantWrite: true},
		{name: "new with a lead", lead: dur(10 * time.Minute), wantCreated: true, wantStatus: StatusPending, wantVersion: 1,
			wantPushAt: lead10m, wantOps: []op{{"add", 1}}, wantWrite: true},
		{name: "new with millisecond lead keeps milliseconds", lead: dur(1500 * time.Millisecond), wantCreated: true,
			wantStatus: StatusPending, wantVersion: 1, wantPushAt: grabStart.Add(-1500 * time.Millisecond), wantOps: []op{{"add", 1}}, wantWrite: true},
		{name: "new after its push time", at: defaultPush, wantErr: ErrTooLate},
		{name: "unknown template", template: 1 << 40, wantErr: template.ErrNotFound},
		{name: "pending same push_at re-indexes without a write", setup: pending(nil), wantStatus: StatusPending,
			wantVersion: 1, wantPushAt: defaultPush, wantOps: []op{{"add", 1}, {"add", 1}}},
		{name: "pending same push_at after its push time still re-indexes", setup: pending(nil), at: grabStart.Add(-time.Second),
			wantStatus: StatusPending, wantVersion: 1, wantPushAt: defaultPush, wantOps: []op{{"add", 1}, {"add", 1}}},
		{name: "pending other lead moves it", setup: pending(nil), lead: dur(10 * time.Minute), wantStatus: StatusPending,
			wantVersion: 2, wantPushAt: lead10m, wantOps: []op{{"add", 1}, {"add", 2}}, wantWrite: true},
		{name: "pending other lead already passed", setup: pending(nil), lead: dur(10 * time.Minute), at: grabStart.Add(-5 * time.Minute),
			wantErr: ErrTooLate, wantOps: []op{{"add", 1}}},
		{name: "sent is returned as is", setup: sent, lead: dur(10 * time.Minute), at: grabStart.Add(-time.Second),
			wantStatus: StatusSent, wantVersion: 2, wantPushAt: defaultPush, wantOps: []op{{"add", 1}}},
		{name: "cancelled is reactivated", setup: cancelled, lead: dur(10 * time.Minute), wantCreated: true, wantStatus: StatusPending,
			wantVersion: 3, wantPushAt: lead10m, wantOps: []op{{"add", 1}, {"cancel", 2}, {"add", 3}}, wantWrite: true},
		{name: "cancelled after its push time", setup: cancelled, at: defaultPush.Add(time.Millisecond),
			wantErr: ErrTooLate, wantOps: []op{{"add", 1}, {"cancel", 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock(base)
			idx := newFakeIndex()
			s := e.service(clk, idx)
			user, template := e.user(), e.template.ID
			if tt.template != 0 {
				template = tt.template
			}
			if tt.setup != nil {
				tt.setup(t, s, user)
			}
			at := tt.at
			if at.IsZero() {
				at = base.Add(time.Minute) // so that a write shows in updated_at
			}
			clk.Set(at)
			before, existed := readRow(t, e.db, user, template)

			sub, created, err := s.Subscribe(ctx, user, template, tt.lead)

			after, exists := readRow(t, e.db, user, template)
			if got := opsOf(idx.callsFor(user, template)); !slices.Equal(got, tt.wantOps) {
				t.Errorf("index calls = %v, want %v", got, tt.wantOps)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Subscribe error = %v, want %v", err, tt.wantErr)
				}
				if existed != exists || before != after {
					t.Fatalf("a refused subscribe wrote: before %+v (%v), after %+v (%v)", before, existed, after, exists)
				}
				return
			}
			if err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
			if created != tt.wantCreated || sub.Status != tt.wantStatus || sub.Version != tt.wantVersion || !sub.PushAt.Equal(tt.wantPushAt) {
				t.Fatalf("Subscribe = %+v created=%v; want status %s version %d push_at %v created=%v",
					sub, created, tt.wantStatus, tt.wantVersion, tt.wantPushAt, tt.wantCreated)
			}
			if !exists || string(sub.Status) != after.status || sub.Version != after.version || !sub.PushAt.Equal(after.pushAt) {
				t.Fatalf("returned %+v but the row is %+v", sub, after)
			}
			if wrote := !existed || before != after; wrote != tt.wantWrite {
				t.Fatalf("row written = %v, want %v (before %+v, after %+v)", wrote, tt.wantWrite, before, after)
			}
			if sub.Status == StatusPending {
				st, ok := idx.get(user, template)
				if !ok || st.cancelled || st.version != sub.Version || !st.pushAt.Equal(sub.PushAt) {
					t.Fatalf("index holds %+v (%v), want the pending subscription %+v", st, ok, sub)
				}
			}
		})
	}
}

func TestSubscribeInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(newClock(base), newFakeIndex())
	tests := []struct {
		name      string
		user, tpl int64
		lead      *time.Duration
		field     string
	}{
		{name: "user 0", user: 0, tpl: e.template.ID, field: "user_id"},
		{name: "negative user", user: -5, tpl: e.template.ID, field: "user_id"},
		{name: "template 0", user: 1, tpl: 0, field: "template_id"},
		{name: "lead 0", user: 1, tpl: e.template.ID, lead: dur(0), field: "lead_seconds"},
		{name: "negative lead", user: 1, tpl: e.template.ID, lead: dur(-time.Second), field: "lead_seconds"},
		{name: "lead above max", user: 1, tpl: e.template.ID, lead: dur(DefaultMax + time.Second), field: "lead_seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := s.Subscribe(context.Background(), tt.user, tt.tpl, tt.lead)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("Subscribe error = %v, want a *ValidationError on %s", err, tt.field)
			}
		})
	}
	var n int
	if err := e.db.QueryRow("SELECT COUNT(*) FROM subscriptions").Scan(&n); err != nil || n != 0 {
		t.Fatalf("invalid subscribes left %d rows (%v)", n, err)
	}
}

func TestSubscribeIndexFailureThenRetryRepairs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	idx := newFakeIndex()
	s := e.service(newClock(base), idx)
	user := e.user()

	idx.setFail(errIndexDown, nil)
	_, _, err := s.Subscribe(ctx, user, e.template.ID, nil)
	if !errors.Is(err, ErrIndex) || !errors.Is(err, errIndexDown) {
		t.Fatalf("Subscribe error = %v, want ErrIndex wrapping the index's error", err)
	}
	if row, ok := readRow(t, e.db, user, e.template.ID); !ok || row.status != "pending" || row.version != 1 {
		t.Fatalf("row after a failed index write = %+v (%v), want pending v1", row, ok)
	}
	if _, ok := idx.get(user, e.template.ID); ok {
		t.Fatal("the failed write reached the index")
	}

	idx.setFail(nil, nil)
	sub, created, err := s.Subscribe(ctx, user, e.template.ID, nil)
	if err != nil || created || sub.Version != 1 {
		t.Fatalf("retry = %+v created=%v err=%v, want the pending v1 row", sub, created, err)
	}
	if st, ok := idx.get(user, e.template.ID); !ok || st.version != 1 || st.cancelled {
		t.Fatalf("index after the retry = %+v (%v), want v1 indexed", st, ok)
	}
}

func TestSubscribeConcurrentSamePairMakesOneRow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	idx := newFakeIndex()
	s := e.service(newClock(base), idx)
	user := e.user()
	const n = 32
	var (
		wg      sync.WaitGroup
		created atomic.Int64
		errs    = make(chan error, n)
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, c, err := s.Subscribe(context.Background(), user, e.template.ID, nil)
			if c {
				created.Add(1)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
	}
	if got := countRows(t, e.db, user, e.template.ID); got != 1 {
		t.Fatalf("rows = %d, want 1", got)
	}
	if created.Load() != 1 {
		t.Fatalf("created = %d times, want once", created.Load())
	}
	if st, ok := idx.get(user, e.template.ID); !ok || st.version != 1 {
		t.Fatalf("index = %+v (%v), want v1", st, ok)
	}
}

// TestSubscribeCancelRaceKeepsIndexInStep races subscribes with two leads and
// cancels on one pair; when all are done, the index must agree with MySQL.
func TestSubscribeCancelRaceKeepsIndexInStep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	idx := newFakeIndex()
	s := e.service(newClock(base), idx)
	ctx := context.Background()
	for round := range 10 {
		user := e.user()
		var wg sync.WaitGroup
		errs := make(chan error, 24)
		for i := range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				switch i % 3 {
				case 0:
					_, _, err = s.Subscribe(ctx, user, e.template.ID, nil)
				case 1:
					_, _, err = s.Subscribe(ctx, user, e.template.ID, dur(10*time.Minute))
				default:
					if err = s.Cancel(ctx, user, e.template.ID); errors.Is(err, ErrNotFound) {
						err = nil
					}
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		row, ok := readRow(t, e.db, user, e.template.ID)
		if !ok {
			t.Fatalf("round %d: no row", round)
		}
		st, _ := idx.get(user, e.template.ID)
		want := indexed{version: row.version, pushAt: row.pushAt, cancelled: row.status == "cancelled"}
		if st.version != want.version || st.cancelled != want.cancelled || (!st.cancelled && !st.pushAt.Equal(want.pushAt)) {
			t.Fatalf("round %d: index %+v, MySQL %+v", round, st, row)
		}
	}
}

func TestSubscribeTemplateMovedConcurrently(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	// A long TTL: the cache keeps the old grab_start unless told otherwise.
	stale, err := template.NewCache(e.store, template.CacheConfig{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tm := e.newTemplate(t, grabStart)
	if _, err := stale.Get(ctx, tm.ID); err != nil {
		t.Fatal(err)
	}
	moved := grabStart.Add(30 * time.Minute)
	if _, err := e.store.Update(ctx, tm.ID, template.Patch{GrabStart: &moved}); err != nil { // another process
		t.Fatal(err)
	}

	t.Run("cache that can invalidate is re-read", func(t *testing.T) {
		s := newService(t, e.db, stale, newFakeIndex(), Config{Now: newClock(base).Now})
		sub, created, err := s.Subscribe(ctx, e.user(), tm.ID, nil)
		if err != nil || !created || !sub.PushAt.Equal(moved.Add(-DefaultLead)) {
			t.Fatalf("Subscribe = %+v %v %v, want push_at from the moved grab_start", sub, created, err)
		}
	})
	t.Run("templates that cannot invalidate answer ErrTemplateChanged", func(t *testing.T) {
		old := tm // as a stale reader still sees it
		s := newService(t, e.db, staticTemplates{old}, newFakeIndex(), Config{Now: newClock(base).Now})
		user := e.user()
		if _, _, err := s.Subscribe(ctx, user, tm.ID, nil); !errors.Is(err, ErrTemplateChanged) {
			t.Fatalf("Subscribe error = %v, want ErrTemplateChanged", err)
		}
		if n := countRows(t, e.db, user, tm.ID); n != 0 {
			t.Fatalf("rows = %d, want 0", n)
		}
	})
}

// TestStaleTemplateNeverMovesARow: a process whose cache still holds a
// moved grab_start must not repoint an existing row from it.
func TestStaleTemplateNeverMovesARow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tm := e.newTemplate(t, grabStart)
	old := tm
	moved := grabStart.Add(20 * time.Minute)
	if _, err := e.store.Update(ctx, tm.ID, template.Patch{GrabStart: &moved}); err != nil {
		t.Fatal(err)
	}
	fresh := newService(t, e.db, e.cache, newFakeIndex(), Config{Now: newClock(base).Now})
	user := e.user()
	sub := subscribe(t, fresh, user, tm.ID) // pending at moved - 60s; the template is now frozen
	if !sub.PushAt.Equal(moved.Add(-DefaultLead)) {
		t.Fatalf("push_at = %v", sub.PushAt)
	}

	stale := newService(t, e.db, staticTemplates{old}, newFakeIndex(), Config{Now: newClock(base).Now})
	before, _ := readRow(t, e.db, user, tm.ID)
	if _, _, err := stale.Subscribe(ctx, user, tm.ID, dur(10*time.Minute)); !errors.Is(err, ErrTemplateChanged) {
		t.Fatalf("Subscribe from a stale template: error = %v, want ErrTemplateChanged", err)
	}
	if after, _ := readRow(t, e.db, user, tm.ID); after != before {
		t.Fatalf("a stale template moved the row: %+v -> %+v", before, after)
	}
	if _, _, err := stale.Subscribe(ctx, e.user(), tm.ID, nil); !errors.Is(err, ErrTemplateChanged) {
		t.Fatalf("new subscribe from a stale template: error = %v, want ErrTemplateChanged", err)
	}
}

func TestFrozenTemplateUsesThePlainInsert(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.service(newClock(base), newFakeIndex())
	if s.final.Known(e.template) {
		t.Fatal("a template without subscribers is frozen")
	}
	subscribe(t, s, e.user(), e.template.ID)
	if !s.final.Known(e.template) {
		t.Fatal("the template is not frozen after its first subscription")
	}
	moved := e.template
	moved.GrabStart = moved.GrabStart.Add(time.Second)
	if s.final.Known(moved) {
		t.Fatal("another grab_start counts as frozen")
	}
	subscribe(t, s, e.user(), e.template.ID) // the plain insert path
	var n int
	if err := e.db.QueryRow("SELECT COUNT(*) FROM subscriptions WHERE template_id = ?", e.template.ID).Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows = %d (%v), want 2", n, err)
	}
}

type staticTemplates struct{ t template.Template }

func (s staticTemplates) Get(_ context.Context, id int64) (template.Template, error) {
	if id != s.t.ID {
		return template.Template{}, template.ErrNotFound
	}
	return s.t, nil
}

func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	tests := []struct {
		name        string
		setup       func(*testing.T, *Service, *fakeIndex, int64)
		user        int64 // zero = a fresh user
		wantErr     error
		wantInvalid string // field of a *ValidationError
		wantStatus  string // the row after; "" = no row
		wantVersion int64
		wantOps     []op
	}{
		{name: "no subscription", wantErr: ErrNotFound},
		{name: "pending is cancelled in the index first, then MySQL",
			setup:      func(t *testing.T, s *Service, _ *fakeIndex, u int64) { subscribe(t, s, u, e.template.ID) },
			wantStatus: "cancelled", wantVersion: 2, wantOps: []op{{"add", 1}, {"cancel", 2}}},
		{name: "cancelled again is a no-op",
			setup: func(t *testing.T, s *Service, _ *fakeIndex, u int64) {
				subscribe(t, s, u, e.template.ID)
				if err := s.Cancel(ctx, u, e.template.ID); err != nil {
					t.Fatal(err)
				}
			},
			wantStatus: "cancelled", wantVersion: 2, wantOps: []op{{"add", 1}, {"cancel", 2}}},
		{name: "sent",
			setup: func(t *testing.T, s *Service, _ *fakeIndex, u int64) {
				subscribe(t, s, u, e.template.ID)
				if err := s.MarkSent(ctx, []Sent{{UserID: u, TemplateID: e.template.ID, PushID: "p", SentAt: base}}); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrAlreadySent, wantStatus: "sent", wantVersion: 2, wantOps: []op{{"add", 1}}},
		{name: "in flight leaves MySQL pending",
			setup: func(t *testing.T, s *Service, idx *fakeIndex, u int64) {
				subscribe(t, s, u, e.template.ID)
				idx.setInFlight(u, e.template.ID)
			},
			wantErr: ErrAlreadySent, wantStatus: "pending", wantVersion: 1, wantOps: []op{{"add", 1}, {"cancel", 2}}},
		{name: "index down leaves MySQL pending",
			setup: func(t *testing.T, s *Service, idx *fakeIndex, u int64) {
				subscribe(t, s, u, e.template.ID)
				idx.setFail(nil, errIndexDown)
			},
			wantErr: ErrIndex, wantStatus: "pending", wantVersion: 1, wantOps: []op{{"add", 1}, {"cancel", 2}}},
		{name: "user 0", user: -1, wantInvalid: "user_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idx := newFakeIndex()
			s := e.service(newClock(base), idx)
			user := e.user()
			if tt.user < 0 {
				user = 0
			}
			if tt.setup != nil {
				tt.setup(t, s, idx, user)
			}
			err := s.Cancel(ctx, user, e.template.ID)
			switch {
			case tt.wantInvalid != "":
				var ve *ValidationError
				if !errors.As(err, &ve) || ve.Field != tt.wantInvalid {
					t.Fatalf("Cancel error = %v, want a *ValidationError on %s", err, tt.wantInvalid)
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Cancel error = %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("Cancel: %v", err)
			}
			row, ok := readRow(t, e.db, user, e.template.ID)
			if tt.wantStatus == "" {
				if ok {
					t.Fatalf("row %+v, want none", row)
				}
			} else if !ok || row.status != tt.wantStatus || row.version != tt.wantVersion {
				t.Fatalf("row = %+v (%v), want %s v%d", row, ok, tt.wantStatus, tt.wantVersion)
			}
			if got := opsOf(idx.callsFor(user, e.template.ID)); !slices.Equal(got, tt.wantOps) {
				t.Fatalf("index calls = %v, want %v", got, tt.wantOps)
			}
		})
	}
}

func subscribe(t *testing.T, s *Service, user, template int64) Subscription {
	t.Helper()
	sub, _, err := s.Subscribe(context.Background(), user, template, nil)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return sub
}

func TestCancelThenResubscribeKeepsOneLiveEntry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	idx := newFakeIndex()
	s := e.service(newClock(base), idx)
	user := e.user()
	subscribe(t, s, user, e.template.ID)
	if err := s.Cancel(ctx, user, e.template.ID); err != nil {
		t.Fatal(err)
	}
	sub, created, err := s.Subscribe(ctx, user, e.template.ID, nil)
	if err != nil || !created || sub.Version != 3 || sub.Status != StatusPending {
		t.Fatalf("resubscribe = %+v created=%v err=%v", sub, created, err)
	}
	if n := countRows(t, e.db, user, e.template.ID); n != 1 {
		t.Fatalf("rows = %d, want 1", n)
	}
	if st, _ := idx.get(user, e.template.ID); st.cancelled || st.version != 3 {
		t.Fatalf("index = %+v, want live at v3", st)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	s := e.service(newClock(base), newFakeIndex())
	user := e.user()
	other := e.newTemplate(t, grabStart.Add(time.Hour))
	subscribe(t, s, user, other.ID)
	subscribe(t, s, user, e.template.ID)
	subscribe(t, s, e.user(), e.template.ID) // someone else's
	if err := s.Cancel(ctx, user, other.ID); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		user    int64
		page    Page
		want    []int64 // template ids in order
		invalid bool
	}{
		{name: "a user's subscriptions by template", user: user, want: []int64{e.template.ID, other.ID}},
		{name: "first page of one", user: user, page: Page{Limit: 1}, want: []int64{e.template.ID}},
		{name: "the page after it", user: user, page: Page{After: e.template.ID, Limit: 1}, want: []int64{other.ID}},
		{name: "after the last", user: user, page: Page{After: other.ID}, want: nil},
		{name: "none", user: 1 << 40, want: nil},
		{name: "invalid user", user: 0, invalid: true},
		{name: "negative after", user: user, page: Page{After: -1}, invalid: true},
		{name: "limit above the maximum", user: user, page: Page{Limit: MaxListLimit + 1}, invalid: true},
		{name: "negative limit", user: user, page: Page{Limit: -1}, invalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subs, err := s.List(ctx, tt.user, tt.page)
			if tt.invalid {
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("List error = %v, want *ValidationError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if subs == nil {
				t.Fatal("List returned nil, want an empty slice")
			}
			var got []int64
			for _, sub := range subs {
				got = append(got, sub.TemplateID)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("templates = %v, want %v", got, tt.want)
			}
			if len(subs) == 2 && (subs[0].Status != StatusPending || subs[1].Status != StatusCancelled) {
				t.Fatalf("statuses = %s, %s", subs[0].Status, subs[1].Status)
			}
		})
	}
}

// sessionUpdates reads how many UPDATE statements the pinned session ran.
func sessionUpdates(t *testing.T, conn *sql.DB) int {
	t.Helper()
	var name string
	var n int
	if err := conn.QueryRow("SHOW SESSION STATUS LIKE 'Com_update'").Scan(&name, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMarkSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tpl := e.template.ID
	pushAt := grabStart.Add(-DefaultLead)

	t.Run("2500 rows in 3 statements", func(t *testing.T) {
		const n = 2500
		first := int64(1_000_000)
		if _, err := e.db.Exec(`INSERT INTO subscriptions (user_id, template_id, push_at, status, version, created_at, updated_at)
SELECT ? + seq, ?, ?, 'pending', 1, ?, ? FROM seq_0_to_2499`, first, tpl, pushAt, base, base); err != nil {
			t.Fatalf("seed rows: %v", err)
		}
		// One pinned connection, so its session counters count MarkSent.
		one, err := sql.Open("mysql", e.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer one.Close()
		one.SetMaxOpenConns(1)
		one.SetMaxIdleConns(1)
		s := newService(t, one, e.cache, newFakeIndex(), Config{Now: newClock(base).Now})
		sent := make([]Sent, n)
		for i := range sent {
			sent[i] = Sent{UserID: first + int64(i), TemplateID: tpl, PushID: fmt.Sprintf("push-%d", i),
				SentAt: pushAt.Add(time.Duration(i) * time.Millisecond)}
		}
		before := sessionUpdates(t, one)
		if err := s.MarkSent(ctx, sent); err != nil {
			t.Fatalf("MarkSent: %v", err)
		}
		if got := sessionUpdates(t, one) - before; got != 3 {
			t.Fatalf("MarkSent ran %d UPDATE statements, want 3", got)
		}
		for _, i := range []int{0, 999, 1000, 1999, 2000, 2499} {
			row, _ := readRow(t, e.db, first+int64(i), tpl)
			if row.status != "sent" || row.pushID.String != sent[i].PushID || !row.sentAt.Time.Equal(sent[i].SentAt) || row.version != 2 {
				t.Fatalf("row %d = %+v, want sent by %s at %v", i, row, sent[i].PushID, sent[i].SentAt)
			}
		}
		var pendingLeft int
		if err := e.db.QueryRow("SELECT COUNT(*) FROM subscriptions WHERE user_id > ? AND status = 'pending'", first-1).Scan(&pendingLeft); err != nil || pendingLeft != 0 {
			t.Fatalf("%d rows still pending (%v)", pendingLeft, err)
		}
	})

	t.Run("only pending rows become sent", func(t *testing.T) {
		idx := newFakeIndex()
		s := e.service(newClock(base), idx)
		cancelledUser, sentUser := e.user(), e.user()
		subscribe(t, s, cancelledUser, tpl)
		if err := s.Cancel(ctx, cancelledUser, tpl); err != nil {
			t.Fatal(err)
		}
		subscribe(t, s, sentUser, tpl)
		if err := s.MarkSent(ctx, []Sent{{UserID: sentUser, TemplateID: tpl, PushID: "first", SentAt: base}}); err != nil {
			t.Fatal(err)
		}
		err := s.MarkSent(ctx, []Sent{
			{UserID: cancelledUser, TemplateID: tpl, PushID: "x", SentAt: base},
			{UserID: sentUser, TemplateID: tpl, PushID: "second", SentAt: base.Add(time.Second)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if row, _ := readRow(t, e.db, cancelledUser, tpl); row.status != "cancelled" || row.pushID.Valid {
			t.Fatalf("cancelled row became %+v", row)
		}
		if row, _ := readRow(t, e.db, sentUser, tpl); row.pushID.String != "first" || !row.sentAt.Time.Equal(base) {
			t.Fatalf("sent row became %+v", row)
		}
	})

	t.Run("invalid input writes nothing", func(t *testing.T) {
		s := e.service(newClock(base), newFakeIndex())
		user := e.user()
		subscribe(t, s, user, tpl)
		tests := []struct {
			name string
			bad  Sent
		}{
			{name: "zero user", bad: Sent{TemplateID: tpl, PushID: "p", SentAt: base}},
			{name: "empty push id", bad: Sent{UserID: 1, TemplateID: tpl, SentAt: base}},
			{name: "push id too long", bad: Sent{UserID: 1, TemplateID: tpl, PushID: string(make([]byte, 65)), SentAt: base}},
			{name: "no sent_at", bad: Sent{UserID: 1, TemplateID: tpl, PushID: "p"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := s.MarkSent(ctx, []Sent{{UserID: user, TemplateID: tpl, PushID: "ok", SentAt: base}, tt.bad})
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("MarkSent error = %v, want *ValidationError", err)
				}
				if row, _ := readRow(t, e.db, user, tpl); row.status != "pending" {
					t.Fatalf("row became %s", row.status)
				}
			})
		}
	})

	t.Run("nothing to mark", func(t *testing.T) {
		if err := e.service(newClock(base), newFakeIndex()).MarkSent(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// TestGrabStartMoveRacesSubscribes moves a template's grab_start while
// subscribes pour in: whichever wins, every row's push_at must follow the
// template's final grab_start.
func TestGrabStartMoveRacesSubscribes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for round := range 5 {
		tm := e.newTemplate(t, grabStart)
		cache, err := template.NewCache(e.store, template.CacheConfig{TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cache.Get(ctx, tm.ID); err != nil { // everyone starts from the old grab_start
			t.Fatal(err)
		}
		s := newService(t, e.db, cache, newFakeIndex(), Config{Now: newClock(base).Now})
		moved := grabStart.Add(time.Duration(round+1) * time.Minute)
		var wg sync.WaitGroup
		errs := make(chan error, 17)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, err := s.Subscribe(ctx, e.user(), tm.ID, nil)
				errs <- err
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Another process moves it; this process's cache is not told.
			if _, err := e.store.Update(ctx, tm.ID, template.Patch{GrabStart: &moved}); err != nil && !errors.Is(err, template.ErrHasSubscribers) {
				errs <- err
			}
		}()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		final, err := e.store.Get(ctx, tm.ID)
		if err != nil {
			t.Fatal(err)
		}
		var bad int
		if err := e.db.QueryRow("SELECT COUNT(*) FROM subscriptions WHERE template_id = ? AND push_at <> ?",
			tm.ID, final.GrabStart.Add(-DefaultLead)).Scan(&bad); err != nil {
			t.Fatal(err)
		}
		if bad != 0 {
			t.Fatalf("round %d: %d rows have a push_at that does not follow grab_start %v", round, bad, final.GrabStart)
		}
	}
}

// newService is NewService for a test's own, valid arguments.
func newService(tb testing.TB, db *sql.DB, t Templates, idx Index, cfg Config) *Service {
	tb.Helper()
	s, err := NewService(db, t, idx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
