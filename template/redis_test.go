package template

import (
	"context"
	"testing"
	"time"

	"couponpush/internal/enginetest"
)

// TestRedis: reads go Redis first, then MySQL; only Refresh writes
// Redis; Update drops the Redis entry so the change is read from MySQL.
func TestRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t)
	rdb := enginetest.Redis(t)
	tiers := NewRedis(rdb, enginetest.Prefix(t), newStore(t, db, StoreConfig{}))
	d := validDraft() // Refresh covers templates whose grab_end is near
	d.GrabStart, d.GrabEnd = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tm, err := tiers.Create(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	key := tiers.keys.template(tm.ID)
	if n := rdb.Exists(ctx, key).Val(); n != 0 {
		t.Fatal("a read or create wrote the Redis cache")
	}
	if got, err := tiers.Get(ctx, tm.ID); err != nil || got != tm {
		t.Fatalf("Get from MySQL = %+v, %v", got, err)
	}
	if n, err := tiers.Refresh(ctx); err != nil || n != 1 {
		t.Fatalf("Refresh = %d, %v", n, err)
	}
	// A change behind the cache's back shows only after the next refresh.
	if _, err := db.Exec("UPDATE templates SET name = 'behind' WHERE id = ?", tm.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := tiers.Get(ctx, tm.ID); got.Name != tm.Name {
		t.Fatalf("Get = %q, want the cached %q", got.Name, tm.Name)
	}
	if _, err := tiers.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := tiers.Get(ctx, tm.ID); got.Name != "behind" {
		t.Fatalf("after Refresh Get = %q", got.Name)
	}
	// Update drops the entry: the next read is MySQL's.
	if _, err := tiers.Update(ctx, tm.ID, Patch{Name: ptr("renamed")}); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, key).Val(); n != 0 {
		t.Fatal("Update left the old entry in Redis")
	}
	if got, _ := tiers.Get(ctx, tm.ID); got.Name != "renamed" {
		t.Fatalf("after Update Get = %q", got.Name)
	}
}
