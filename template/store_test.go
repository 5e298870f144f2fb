package template

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"couponpush/migrate"
)

// newDB returns a migrated, isolated database.
func newDB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", newDSN(t))
	if err != nil {
		t.Fatalf("open MySQL: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := migrate.Up(context.Background(), db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

func withPriority(d Draft, p Priority) Draft {
	d.Priority = &p
	return d
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func addSubscriber(t *testing.T, db *sql.DB, templateID int64) {
	t.Helper()
	if _, err := db.Exec(`INSERT INTO subscriptions (user_id, template_id, push_at, status, version, created_at, updated_at)
VALUES (1, ?, ?, 'cancelled', 2, ?, ?)`, templateID, t0, t0, t0); err != nil {
		t.Fatalf("insert subscription: %v", err)
	}
}

func TestStoreCreateGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 11, 1, 8, 0, 0, 123_000_000, time.UTC)
	s := newStore(t, newDB(t), StoreConfig{Now: fixedClock(now)})

	tests := []struct {
		name string
		d    Draft
	}{
		{name: "fixed with valid_days", d: validDraft()},
		{name: "percent with valid_until", d: Draft{Name: "ten percent", Type: Percent, Value: 10, ThresholdCents: 9900,
			Stock: 5, PerUserLimit: ptr(3), GrabStart: t0.Add(123 * time.Millisecond), GrabEnd: t0.Add(time.Hour),
			ValidUntil: ptr(t0.Add(240 * time.Hour))}},
		{name: "priority high", d: withPriority(validDraft(), PriorityHigh)},
		{name: "priority normal", d: withPriority(validDraft(), PriorityNormal)},
		{name: "priority low", d: withPriority(validDraft(), PriorityLow)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created, err := s.Create(ctx, tt.d)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if created.ID <= 0 || created.Version != 1 || !created.CreatedAt.Equal(now) {
				t.Fatalf("Create returned %+v", created)
			}
			got, err := s.Get(ctx, created.ID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if got != created {
				t.Fatalf("Get = %+v\nwant  %+v", got, created)
			}
			want := PriorityNormal
			if tt.d.Priority != nil {
				want = *tt.d.Priority
			}
			var col string
			if err := s.db.QueryRow("SELECT priority FROM templates WHERE id = ?", created.ID).Scan(&col); err != nil {
				t.Fatal(err)
			}
			if got.Priority != want || col != string(want) {
				t.Fatalf("priority answered %q, stored %q, want %q", got.Priority, col, want)
			}
		})
	}

	t.Run("invalid draft writes nothing", func(t *testing.T) {
		d := validDraft()
		d.Stock = 0
		var ve *ValidationError
		if _, err := s.Create(ctx, d); !errors.As(err, &ve) {
			t.Fatalf("Create error = %v, want *ValidationError", err)
		}
		var n int
		if err := s.db.QueryRow("SELECT COUNT(*) FROM templates WHERE stock = 0").Scan(&n); err != nil || n != 0 {
			t.Fatalf("rows with stock 0: %d, %v", n, err)
		}
	})
	t.Run("get unknown id", func(t *testing.T) {
		if _, err := s.Get(ctx, 1<<50); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get error = %v, want ErrNotFound", err)
		}
	})
}

func TestStoreUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t)
	s := newStore(t, db, StoreConfig{Now: fixedClock(t0.Add(-time.Hour))})

	tests := []struct {
		name        string
		subscribers bool
		patch       Patch
		wantErr     error // sentinel, or nil
		wantInvalid bool
		check       func(t *testing.T, before, after Template)
	}{
		{name: "rename", patch: Patch{Name: ptr("renamed")}, check: func(t *testing.T, b, a Template) {
			if a.Name != "renamed" || a.Version != b.Version+1 {
				t.Errorf("after = %+v", a)
			}
		}},
		{name: "move grab_start without subscribers", patch: Patch{GrabStart: ptr(t0.Add(time.Minute))}, check: func(t *testing.T, b, a Template) {
			if !a.GrabStart.Equal(t0.Add(time.Minute)) {
				t.Errorf("GrabStart = %v", a.GrabStart)
			}
		}},
		{name: "move grab_start with subscribers", subscribers: true, patch: Patch{GrabStart: ptr(t0.Add(time.Minute))}, wantErr: ErrHasSubscribers},
		{name: "same grab_start with subscribers is no change", subscribers: true, patch: Patch{GrabStart: ptr(t0), Name: ptr("x")}, check: func(t *testing.T, b, a Template) {
			if a.Name != "x" || !a.GrabStart.Equal(t0) {
				t.Errorf("after = %+v", a)
			}
		}},
		{name: "grab_end with subscribers", subscribers: true, patch: Patch{GrabEnd: ptr(t0.Add(2 * time.Hour))}, check: func(t *testing.T, b, a Template) {
			if !a.GrabEnd.Equal(t0.Add(2 * time.Hour)) {
				t.Errorf("GrabEnd = %v", a.GrabEnd)
			}
		}},
		{name: "priority with subscribers", subscribers: true, patch: Patch{Priority: ptr(PriorityHigh)}, check: func(t *testing.T, b, a Template) {
			if a.Priority != PriorityHigh || b.Priority != PriorityNormal || a.Version != b.Version+1 {
				t.Errorf("before %+v\nafter %+v", b, a)
			}
		}},
		{name: "same priority is no change", patch: Patch{Priority: ptr(PriorityNormal)}, check: func(t *testing.T, b, a Template) {
			if a != b {
				t.Errorf("after = %+v, want %+v", a, b)
			}
		}},
		{name: "unknown priority", patch: Patch{Priority: ptr(Priority("urgent")), Name: ptr("x")}, wantInvalid: true},
		{name: "grab_end before grab_start", patch: Patch{GrabEnd: ptr(t0.Add(-time.Hour))}, wantInvalid: true},
		{name: "empty name", patch: Patch{Name: ptr("")}, wantInvalid: true},
		{name: "empty patch changes nothing", patch: Patch{}, check: func(t *testing.T, b, a Template) {
			if a != b {
				t.Errorf("after = %+v, want %+v", a, b)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := s.Create(ctx, validDraft())
			if err != nil {
				t.Fatal(err)
			}
			if tt.subscribers {
				addSubscriber(t, db, before.ID)
			}
			after, err := s.Update(ctx, before.ID, tt.patch)
			stored, gerr := s.Get(ctx, before.ID)
			if gerr != nil {
				t.Fatal(gerr)
			}
			var ve *ValidationError
			switch {
			case tt.wantErr != nil || tt.wantInvalid:
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("Update error = %v, want %v", err, tt.wantErr)
				}
				if tt.wantInvalid && !errors.As(err, &ve) {
					t.Fatalf("Update error = %v, want *ValidationError", err)
				}
				if stored != before {
					t.Fatalf("a refused update changed the row: %+v", stored)
				}
			case err != nil:
				t.Fatalf("Update: %v", err)
			default:
				if stored != after {
					t.Fatalf("stored %+v\nreturned %+v", stored, after)
				}
				tt.check(t, before, after)
			}
		})
	}
	t.Run("unknown id", func(t *testing.T) {
		if _, err := s.Update(ctx, 1<<50, Patch{Name: ptr("x")}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Update error = %v, want ErrNotFound", err)
		}
	})
}
