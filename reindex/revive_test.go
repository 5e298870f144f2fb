package reindex_test

import (
	"context"
	"testing"
	"time"

	"couponpush/queue"
	"couponpush/reindex"
)

// TestRevivesAFailedDelete: a row pending in MySQL under a newer tombstone
// (a DELETE whose MySQL write failed after its index write) is left alone
// while it may be a DELETE in progress, and repaired once a run a Grace
// later finds it unchanged: the row moves above the tombstone and the
// reminder is indexed and pops.
func TestRevivesAFailedDelete(t *testing.T) {
	ctx := context.Background()
	db, idx := engines(t)
	const n = 2
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	at := now.Add(5 * time.Minute)
	if _, err := db.Exec(`INSERT INTO subscriptions (user_id, template_id, push_at, status, version, created_at, updated_at)
		VALUES (9, 7, ?, 'pending', 1, ?, ?)`, at, now, now); err != nil {
		t.Fatal(err)
	}
	if err := idx.Cancel(ctx, n, queue.Entry{UserID: 9, TemplateID: 7, PushAt: at, Version: 2}); err != nil {
		t.Fatal(err)
	}
	clock := now
	job, err := reindex.New(db, idx.NewRouter(func() int { return n }), reindex.Config{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name    string
		at      time.Time
		revived int
	}{
		{"first sighting: maybe a DELETE in progress", now, 0},
		{"within the grace", now.Add(30 * time.Second), 0},
		{"a grace later, unchanged", now.Add(61 * time.Second), 1},
		{"repaired: nothing left", now.Add(2 * time.Minute), 0},
	} {
		clock = step.at
		res, err := job.Run(ctx)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if res.Revived != step.revived {
			t.Fatalf("%s: run = %+v; want %d revived", step.name, res, step.revived)
		}
	}
	var status string
	var version int64
	if err := db.QueryRow(`SELECT status, version FROM subscriptions WHERE user_id = 9 AND template_id = 7`).Scan(&status, &version); err != nil {
		t.Fatal(err)
	}
	if status != "pending" || version != 3 {
		t.Fatalf("row %s v%d; want pending v3, above the tombstone", status, version)
	}
	l, ok, err := idx.Acquire(ctx, queue.Shard(9, n), time.Second)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	p, err := idx.Pop(ctx, l, queue.PopOptions{Now: at.Add(time.Second), MaxUsers: 100, Deadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Chunk.Pushes) != 1 || p.Chunk.Pushes[0].UserID != 9 {
		t.Fatalf("popped %+v; want user 9's reminder", p.Chunk.Pushes)
	}
}
