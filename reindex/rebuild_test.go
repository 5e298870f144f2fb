package reindex_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"couponpush/internal/enginetest"
	"couponpush/migrate"
	"couponpush/queue"
	"couponpush/reindex"
)

// rebuildDB returns a migrated database of this test's own.
func rebuildDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", enginetest.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := migrate.Up(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

func insertRow(t *testing.T, db *sql.DB, user, tid int64, at time.Time, status string, ver int64) queue.Entry {
	t.Helper()
	now := time.Now().UTC()
	if _, err := db.Exec(`INSERT INTO subscriptions (user_id, template_id, push_at, status, version, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, user, tid, at.UTC(), status, ver, now, now); err != nil {
		t.Fatal(err)
	}
	return queue.Entry{UserID: user, TemplateID: tid, PushAt: at, Version: ver}
}

func TestRebuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := rebuildDB(t)
	idx, err := queue.New(enginetest.Redis(t), queue.Options{Prefix: enginetest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	r := idx.NewRouter(func() int { return n })
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

	lost := insertRow(t, db, 1, 7, at.Add(time.Minute), "pending", 1)   // its Redis write failed
	kept := insertRow(t, db, 2, 7, at.Add(time.Minute), "pending", 1)   // indexed
	insertRow(t, db, 3, 7, at, "sent", 2)                               // sent: never read
	insertRow(t, db, 4, 7, at.Add(time.Minute), "cancelled", 2)         // cancelled: never read
	racing := insertRow(t, db, 5, 7, at.Add(time.Minute), "pending", 1) // a DELETE in progress: tombstone at v2
	taken := insertRow(t, db, 6, 7, at.Add(-time.Minute), "pending", 1) // popped, mark not in MySQL yet
	behind := insertRow(t, db, 7, 7, at.Add(2*time.Minute), "pending", 3)
	for _, e := range []queue.Entry{kept, taken, {UserID: 7, TemplateID: 7, PushAt: at.Add(time.Hour), Version: 1}} {
		if err := r.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	racing.Version = 2
	if err := r.Cancel(ctx, racing); err != nil {
		t.Fatal(err)
	}
	q := queue.Shard(taken.UserID, n)
	l, ok, err := idx.Acquire(ctx, q, time.Minute)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if p, err := idx.Pop(ctx, l, queue.PopOptions{Now: at, MergeWindow: time.Second, MaxUsers: 100, Deadline: time.Minute}); err != nil || len(p.Chunk.Pushes) != 1 {
		t.Fatalf("pop user 6: %+v %v", p, err)
	}

	var calls [][2]int64
	ri := reindex.Routed{Router: r, Client: idx}
	res, err := reindex.Rebuild(ctx, db, ri, 2, func(done, total int64) { calls = append(calls, [2]int64{done, total}) })
	if err != nil {
		t.Fatal(err)
	}
	want := reindex.RebuildResult{Read: 5, Indexed: 1, Present: 3, Taken: 1}
	if res != want {
		t.Fatalf("rebuild = %+v, want %+v", res, want)
	}
	if len(calls) != 4 || calls[0] != [2]int64{0, 5} || calls[3] != [2]int64{5, 5} {
		t.Errorf("progress calls %v; want 0/5, then after each batch of 2, to 5/5", calls)
	}
	recs := map[int64][]queue.RecordEntry{}
	for _, u := range []int64{lost.UserID, racing.UserID, taken.UserID, behind.UserID} {
		es, _, err := idx.UserRecord(ctx, queue.Shard(u, n), u)
		if err != nil {
			t.Fatal(err)
		}
		recs[u] = es
	}
	checks := []struct {
		name  string
		user  int64
		state queue.EntryState
		ver   int64
	}{
		{"lost write re-indexed", lost.UserID, queue.StatePending, 1},
		{"cancel not revived", racing.UserID, queue.StateCancelled, 2},
		{"taken left alone", taken.UserID, queue.StateTaken, 1},
		{"older version updated", behind.UserID, queue.StatePending, 3},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			es := recs[c.user]
			if len(es) != 1 || es[0].State != c.state || es[0].Version != c.ver {
				t.Errorf("user %d record %+v; want %v at v%d", c.user, es, c.state, c.ver)
			}
		})
	}
	if es, _, err := idx.UserRecord(ctx, queue.Shard(3, n), 3); err != nil || len(es) != 0 {
		t.Errorf("sent row indexed: %+v %v", es, err)
	}

	// Idempotent: a second run finds everything in place.
	again, err := reindex.Rebuild(ctx, db, ri, 1000, nil)
	if err != nil || again != (reindex.RebuildResult{Read: 5, Indexed: 0, Present: 4, Taken: 1}) {
		t.Fatalf("second rebuild = %+v, %v", again, err)
	}
	// A bare router works too; it only cannot tell what was there.
	if bare, err := reindex.Rebuild(ctx, db, r, 1000, nil); err != nil || bare.Read != 5 || bare.Indexed != 5 {
		t.Fatalf("rebuild through a bare router = %+v, %v", bare, err)
	}
	if _, err := reindex.Rebuild(ctx, db, r, 0, nil); err == nil {
		t.Fatal("batch 0: want an error")
	}
}

// lockProbe is an index whose Add tries to mark its row sent from another
// connection, as the scheduler's marker would, and records whether it had
// to wait.
type lockProbe struct {
	t       *testing.T
	db      *sql.DB
	mu      sync.Mutex
	blocked []int64
	added   []queue.Entry
}

func (p *lockProbe) Add(ctx context.Context, e queue.Entry) error {
	conn, err := p.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION innodb_lock_wait_timeout = 1"); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, `UPDATE subscriptions SET status = 'sent', push_id = 'x', version = version + 1
		WHERE user_id = ? AND template_id = ? AND status = 'pending'`, e.UserID, e.TemplateID)
	var me *mysql.MySQLError
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case errors.As(err, &me) && me.Number == 1205: // lock wait timeout
		p.blocked = append(p.blocked, e.UserID)
	case err != nil:
		return err
	}
	p.added = append(p.added, e)
	return nil
}

// TestRebuildHoldsMarksBack shows that a sent-mark cannot land between the
// read that saw a row pending and its Add: the UPDATE waits for the batch.
func TestRebuildHoldsMarksBack(t *testing.T) {
	t.Parallel()
	db := rebuildDB(t)
	at := time.Now().Add(time.Hour)
	insertRow(t, db, 1, 9, at, "pending", 1)
	insertRow(t, db, 2, 9, at, "pending", 1)
	p := &lockProbe{t: t, db: db}
	res, err := reindex.Rebuild(context.Background(), db, p, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Read != 2 || len(p.blocked) != 2 {
		t.Fatalf("rebuild %+v; marks blocked for users %v, want both", res, p.blocked)
	}
	// Once the batch is done, marks go through.
	var pending int
	if _, err := db.Exec(`UPDATE subscriptions SET status = 'sent' WHERE status = 'pending'`); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM subscriptions WHERE status = 'pending'`).Scan(&pending); err != nil || pending != 0 {
		t.Fatalf("pending after the marks: %d %v", pending, err)
	}
}
