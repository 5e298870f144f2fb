package reindex_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"couponpush/internal/enginetest"
	"couponpush/migrate"
	"couponpush/queue"
	"couponpush/reindex"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

// engines opens the test's MySQL database, migrated, and a queue client on
// its own Redis prefix.
func engines(t *testing.T) (*sql.DB, *queue.Client) {
	t.Helper()
	db, err := sql.Open("mysql", enginetest.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := migrate.Up(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	idx, err := queue.New(enginetest.Redis(t), queue.Options{Prefix: enginetest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	return db, idx
}

func TestRepairsOnlyWhatTheIndexLacks(t *testing.T) {
	ctx := context.Background()
	db, idx := engines(t)
	const n = 4
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	insert := func(user int64, status string, at time.Time, ver int64) queue.Entry {
		t.Helper()
		if _, err := db.Exec(`INSERT INTO subscriptions (user_id, template_id, push_at, status, version, created_at, updated_at)
			VALUES (?, 7, ?, ?, ?, ?, ?)`, user, at, status, ver, now, now); err != nil {
			t.Fatal(err)
		}
		return queue.Entry{UserID: user, TemplateID: 7, PushAt: at, Version: ver}
	}
	lost := insert(1, "pending", now.Add(2*time.Minute), 1)   // PUT whose Redis write failed
	kept := insert(2, "pending", now.Add(3*time.Minute), 1)   // indexed normally
	insert(3, "pending", now.Add(10*time.Second), 1)          // too close to its time: left alone
	insert(4, "cancelled", now.Add(2*time.Minute), 2)         // cancelled: never indexed
	racing := insert(5, "pending", now.Add(4*time.Minute), 1) // a DELETE in progress: tombstone in Redis
	insert(6, "pending", now.Add(time.Hour), 1)               // beyond the horizon
	if err := idx.Add(ctx, n, kept); err != nil {
		t.Fatal(err)
	}
	racing.Version = 2
	if err := idx.Cancel(ctx, n, racing); err != nil {
		t.Fatal(err)
	}

	job, err := reindex.New(db, idx.NewRouter(func() int { return n }), reindex.Config{Page: 2, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := job.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Checked != 3 || res.Repaired != 1 {
		t.Fatalf("run = %+v, want 3 checked (users 1, 2, 5) and 1 repaired (user 1)", res)
	}
	has, err := idx.Indexed(ctx, n, []queue.Entry{lost})
	if err != nil || !has[0] {
		t.Fatalf("user 1 indexed = %v, %v", has, err)
	}
	if again, err := job.Run(ctx); err != nil || again.Repaired != 0 {
		t.Fatalf("second run = %+v, %v; want nothing to repair", again, err)
	}
	// The cancel in progress was not revived: user 5 pops nothing.
	q := queue.Shard(5, n)
	l, ok, err := idx.Acquire(ctx, q, time.Second)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	p, err := idx.Pop(ctx, l, queue.PopOptions{Now: now.Add(time.Hour), MaxUsers: 100, Deadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range p.Chunk.Pushes {
		if x.UserID == 5 {
			t.Fatalf("cancelled reminder of user 5 revived: %+v", x)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  reindex.Config
	}{
		{"horizon inside margin", reindex.Config{Margin: time.Minute, Horizon: time.Second}},
		{"negative page", reindex.Config{Page: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := reindex.New(nil, nil, tc.cfg); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

// A PATCH of a template's priority reaches reminders indexed before it:
// a run moves each pending one due after its margin to the new class, and
// leaves the one inside the margin (it may be taken already) as it was.
func TestReclassesAfterAPriorityChange(t *testing.T) {
	ctx := context.Background()
	db, idx := engines(t)
	const n = 2
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	r, err := db.Exec(`INSERT INTO templates (name, type, value, stock, priority, grab_start, grab_end, valid_days, created_at, updated_at)
		VALUES ('hot', 'fixed', 100, 10, 'normal', ?, ?, 7, ?, ?)`, now.Add(time.Hour), now.Add(2*time.Hour), now, now)
	if err != nil {
		t.Fatal(err)
	}
	tid, err := r.LastInsertId()
	if err != nil {
		t.Fatal(err)
	}
	var es []queue.Entry
	for user, at := range map[int64]time.Time{1: now.Add(2 * time.Minute), 2: now.Add(5 * time.Minute), 3: now.Add(10 * time.Second)} {
		if _, err := db.Exec(`INSERT INTO subscriptions (user_id, template_id, push_at, status, version, created_at, updated_at)
			VALUES (?, ?, ?, 'pending', 1, ?, ?)`, user, tid, at, now, now); err != nil {
			t.Fatal(err)
		}
		e := queue.Entry{UserID: user, TemplateID: tid, PushAt: at, Version: 1}
		if err := idx.Add(ctx, n, e); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	if _, err := db.Exec(`UPDATE templates SET priority = 'high', version = version + 1 WHERE id = ?`, tid); err != nil {
		t.Fatal(err)
	}
	router := idx.NewRouter(func() int { return n })
	job, err := reindex.New(db, router, reindex.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := job.Run(ctx)
	if err != nil || res.Reclassed != 2 || res.Repaired != 0 {
		t.Fatalf("run = %+v, %v; want users 1 and 2 reclassed, nothing repaired", res, err)
	}
	for _, e := range es {
		recs, err := router.Records(ctx, []queue.Entry{e})
		if err != nil {
			t.Fatal(err)
		}
		want := queue.PriorityHigh
		if e.UserID == 3 {
			want = queue.PriorityNormal
		}
		if recs[0].State != queue.StatePending || recs[0].Version != 1 || recs[0].Priority != want {
			t.Fatalf("user %d: record %+v, want pending at version 1 with priority %v", e.UserID, recs[0], want)
		}
	}
	if again, err := job.Run(ctx); err != nil || again.Reclassed != 0 {
		t.Fatalf("second run = %+v, %v; want nothing left to reclass", again, err)
	}
}
