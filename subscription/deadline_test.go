package subscription

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"couponpush/internal/enginetest"
	"couponpush/template"
)

// TestPutRepairsANewerTombstone: a DELETE whose MySQL write failed after
// its index write leaves the row pending and a tombstone one version newer
// in the index. A PUT then must not answer pending while the reminder can
// never be pushed: it moves the row above the tombstone and indexes it.
func TestPutRepairsANewerTombstone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	idx := newFakeIndex()
	s := e.service(newClock(base), idx)
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	user := e.user()
	sub, created, err := s.Subscribe(ctx, user, e.template.ID, nil)
	if err != nil || !created {
		t.Fatalf("subscribe: %v created=%v", err, created)
	}
	// What the half-done DELETE left: its tombstone, no MySQL write.
	tomb := sub.entry()
	tomb.Version++
	if err := idx.Cancel(ctx, tomb); err != nil {
		t.Fatal(err)
	}

	again, created, err := s.Subscribe(ctx, user, e.template.ID, nil)
	if err != nil || created || again.Status != StatusPending {
		t.Fatalf("PUT over the tombstone = %+v created=%v err=%v; want pending, not created", again, created, err)
	}
	st, ok := idx.get(user, e.template.ID)
	if !ok || st.cancelled || st.version <= tomb.Version {
		t.Fatalf("index holds %+v; want pending above the tombstone's version %d", st, tomb.Version)
	}
	row, _ := readRow(t, e.db, user, e.template.ID)
	if row.status != "pending" || row.version != st.version || again.Version != st.version {
		t.Fatalf("row %s v%d, answer v%d, index v%d; want one pending version", row.status, row.version, again.Version, st.version)
	}
	// And a DELETE now still wins over it.
	if err := s.Cancel(ctx, user, e.template.ID); err != nil {
		t.Fatal(err)
	}
	if st, _ := idx.get(user, e.template.ID); !st.cancelled {
		t.Fatalf("after DELETE the index holds %+v; want a tombstone", st)
	}
	if row, _ := readRow(t, e.db, user, e.template.ID); row.status != "cancelled" {
		t.Fatalf("after DELETE the row is %s", row.status)
	}
}

// TestCancelCompletesAfterHangUp: a client that hangs up between the
// DELETE's index write and its MySQL write does not leave the half: the
// MySQL write completes, and the row is cancelled like its tombstone.
func TestCancelCompletesAfterHangUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	idx := newFakeIndex()
	s := e.service(newClock(base), idx)
	t.Cleanup(func() { s.Close() })
	user := e.user()
	if _, _, err := s.Subscribe(context.Background(), user, e.template.ID, nil); err != nil {
		t.Fatal(err)
	}
	ctx, hangUp := context.WithCancel(context.Background())
	s.afterIndexCancel = hangUp
	err := s.Cancel(ctx, user, e.template.ID)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %v", err)
	}
	enginetest.Eventually(t, "the row cancelled after the hang-up", 30*time.Second, func() bool {
		row, _ := readRow(t, e.db, user, e.template.ID)
		return row.status == "cancelled"
	})
	if st, _ := idx.get(user, e.template.ID); !st.cancelled {
		t.Fatalf("index holds %+v; want a tombstone", st)
	}
	row, _ := readRow(t, e.db, user, e.template.ID)
	if st, _ := idx.get(user, e.template.ID); row.version != st.version {
		t.Fatalf("row v%d, tombstone v%d; want equal", row.version, st.version)
	}
}

// TestStuckPrepareHoldsNoOtherCaller: a statement's first prepare stuck on
// a MySQL that stopped answering, under a finishing step's long bound, does
// not hold other callers past their own deadlines (it once held the
// service's lock across the prepare, so every request waited for MySQL to
// come back).
func TestStuckPrepareHoldsNoOtherCaller(t *testing.T) {
	t.Parallel()
	proc, dsn := enginetest.StartMySQL(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := newService(t, db, noTemplates{}, newFakeIndex(), Config{})
	t.Cleanup(func() { s.Close() })

	proc.Freeze(t)
	long, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stuck := make(chan error, 1)
	go func() {
		_, err := s.stmt(long, "SELECT 1")
		stuck <- err
	}()
	// Each short caller needs a statement of its own: with the lock held
	// across the first prepare, every one after it waits for MySQL.
	const deadline, margin = 200 * time.Millisecond, 2 * time.Second
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		start := time.Now()
		_, err := s.stmt(ctx, fmt.Sprintf("SELECT %d", i+2))
		took := time.Since(start)
		cancel()
		if err == nil {
			t.Fatalf("prepare %d on a frozen MySQL succeeded", i)
		}
		if took > deadline+margin {
			t.Fatalf("prepare %d answered after %v, beyond its deadline %v plus %v: %v", i, took, deadline, margin, err)
		}
	}
	proc.Thaw(t)
	if err := <-stuck; err != nil {
		t.Fatalf("the long prepare after the thaw: %v", err)
	}
}

// noTemplates is a Templates that knows none.
type noTemplates struct{}

func (noTemplates) Get(context.Context, int64) (template.Template, error) {
	return template.Template{}, errors.New("no templates here")
}
