package template

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// TestPriorityTiers: a template's priority survives every tier (MySQL,
// the Redis entry Refresh writes, process memory); a Redis entry written
// before templates had a priority reads as normal; an entry with a
// priority this version does not know is passed over for MySQL.
func TestPriorityTiers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := enginetest.Redis(t)
	tiers := NewRedis(rdb, enginetest.Prefix(t), newStore(t, newDB(t), StoreConfig{}))
	cache, err := NewCache(tiers, CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	draft := func(p *Priority) Draft {
		d := validDraft() // Refresh covers templates whose grab_end is near
		d.GrabStart, d.GrabEnd, d.Priority = now.Add(-time.Hour), now.Add(time.Hour), p
		return d
	}
	for _, tc := range []struct {
		name string
		in   *Priority
		want Priority
	}{
		{"high", ptr(PriorityHigh), PriorityHigh},
		{"normal", ptr(PriorityNormal), PriorityNormal},
		{"low", ptr(PriorityLow), PriorityLow},
		{"none", nil, PriorityNormal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm, err := cache.Create(ctx, draft(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if tm.Priority != tc.want {
				t.Fatalf("Create answered priority %q, want %q", tm.Priority, tc.want)
			}
			if _, err := tiers.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			raw, err := rdb.Get(ctx, tiers.keys.template(tm.ID)).Bytes()
			if err != nil {
				t.Fatalf("Refresh wrote no entry: %v", err)
			}
			var entry map[string]any
			if err := json.Unmarshal(raw, &entry); err != nil || entry["Priority"] != string(tc.want) {
				t.Fatalf("Redis entry %s: priority %v, want %q (%v)", raw, entry["Priority"], tc.want, err)
			}
			// Mark the entry so a read that answers it is told from MySQL's.
			entry["Name"] = "from redis"
			setEntry(t, rdb, tiers.keys.template(tm.ID), entry)
			got, err := cache.Get(ctx, tm.ID)
			if err != nil || got.Name != "from redis" || got.Priority != tc.want {
				t.Fatalf("Get through memory and Redis = %q %q, %v; want the Redis entry with %q", got.Name, got.Priority, err, tc.want)
			}
		})
	}

	t.Run("entry without priority reads as normal", func(t *testing.T) {
		tm, err := tiers.Create(ctx, draft(ptr(PriorityLow)))
		if err != nil {
			t.Fatal(err)
		}
		entry := entryOf(t, tm)
		delete(entry, "Priority")
		entry["Name"] = "old entry"
		setEntry(t, rdb, tiers.keys.template(tm.ID), entry)
		got, err := tiers.Get(ctx, tm.ID)
		if err != nil || got.Name != "old entry" || got.Priority != PriorityNormal {
			t.Fatalf("Get = %q %q, %v; want the old entry, normal", got.Name, got.Priority, err)
		}
	})
	t.Run("entry with an unknown priority is passed over", func(t *testing.T) {
		tm, err := tiers.Create(ctx, draft(ptr(PriorityHigh)))
		if err != nil {
			t.Fatal(err)
		}
		entry := entryOf(t, tm)
		entry["Priority"], entry["Name"] = "urgent", "bad entry"
		setEntry(t, rdb, tiers.keys.template(tm.ID), entry)
		got, err := tiers.Get(ctx, tm.ID)
		if err != nil || got != tm {
			t.Fatalf("Get = %+v, %v; want MySQL's %+v", got, err, tm)
		}
	})
	t.Run("patch through the cache", func(t *testing.T) {
		tm, err := cache.Create(ctx, draft(nil))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := cache.Get(ctx, tm.ID); err != nil || got.Priority != PriorityNormal {
			t.Fatalf("Get = %q, %v", got.Priority, err)
		}
		if _, err := cache.Update(ctx, tm.ID, Patch{Priority: ptr(PriorityHigh)}); err != nil {
			t.Fatal(err)
		}
		if got, err := cache.Get(ctx, tm.ID); err != nil || got.Priority != PriorityHigh {
			t.Fatalf("after Update Get = %q, %v; want high", got.Priority, err)
		}
	})
}

func entryOf(t *testing.T, tm Template) map[string]any {
	t.Helper()
	b, err := json.Marshal(tm)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func setEntry(t *testing.T, rdb redis.UniversalClient, key string, entry map[string]any) {
	t.Helper()
	b, err := json.Marshal(entry)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(context.Background(), key, b, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
}
