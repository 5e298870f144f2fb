package template

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis template cache defaults.
const (
	DefaultRedisTTL = 10 * time.Minute
	maxRefresh      = 10_000
)

// Redis is the Redis tier of template reads, between a Cache (memory) and
// a Store (MySQL): Get answers from Redis and falls back to MySQL on a miss
// or a Redis error. Readers never write Redis: Refresh does, run by one
// worker at a time (the coupon role's refresh job, under a Consul lock,
// every template_refresh_every). Create writes MySQL; Update and AddStock
// write MySQL and delete the template's Redis entry, so the next reads go
// to MySQL until Refresh.
type Redis struct {
	rdb   redis.UniversalClient
	keys  keys
	store *Store
	ttl   time.Duration
	now   func() time.Time
}

// NewRedis returns the Redis tier over store; prefix starts its keys
// (default "couponpush").
func NewRedis(rdb redis.UniversalClient, prefix string, store *Store) *Redis {
	if prefix == "" {
		prefix = "couponpush"
	}
	return &Redis{rdb: rdb, keys: keys{prefix: prefix}, store: store, ttl: DefaultRedisTTL, now: time.Now}
}

// Get reads template id from Redis, else from MySQL.
func (r *Redis) Get(ctx context.Context, id int64) (Template, error) {
	b, err := r.rdb.Get(ctx, r.keys.template(id)).Bytes()
	if err == nil {
		if t, ok := decodeCached(b, id); ok {
			return t, nil
		}
	}
	return r.store.Get(ctx, id)
}

// decodeCached reads a Redis entry written by Refresh. An entry written
// before templates had a priority has none: it is PriorityNormal, as the
// column's default made it in MySQL. An entry that is not template id, or
// whose priority this version does not know, is not used (the caller
// reads MySQL).
func decodeCached(b []byte, id int64) (Template, bool) {
	var t Template
	if json.Unmarshal(b, &t) != nil || t.ID != id {
		return Template{}, false
	}
	if t.Priority == "" {
		t.Priority = PriorityNormal
	}
	if !t.Priority.Valid() {
		return Template{}, false
	}
	return t, true
}

// Create creates a template in MySQL (see Store.Create).
func (r *Redis) Create(ctx context.Context, d Draft) (Template, error) {
	return r.store.Create(ctx, d)
}

// Update changes a template in MySQL and drops its Redis entry.
func (r *Redis) Update(ctx context.Context, id int64, p Patch) (Template, error) {
	t, err := r.store.Update(ctx, id, p)
	r.forget(ctx, id)
	return t, err
}

// AddStock adds stock in MySQL (see Store.AddStock) and drops the
// template's Redis entry.
func (r *Redis) AddStock(ctx context.Context, id, n int64) (Template, int64, error) {
	t, addID, err := r.store.AddStock(ctx, id, n)
	r.forget(ctx, id)
	return t, addID, err
}

func (r *Redis) forget(ctx context.Context, id int64) {
	// Best effort: Refresh rewrites the entry within its period anyway.
	_ = r.rdb.Del(context.WithoutCancel(ctx), r.keys.template(id)).Err()
}

// Refresh writes every template whose grab_end is less than a day ago (at
// most 10,000, latest first) from MySQL to Redis, and returns how many.
// Run it from one worker at a time.
func (r *Redis) Refresh(ctx context.Context) (int, error) {
	rows, err := r.store.db.QueryContext(ctx, "SELECT "+templateColumns+" FROM templates WHERE grab_end > ? ORDER BY grab_end DESC LIMIT ?",
		norm(r.now().Add(-24*time.Hour)), maxRefresh)
	if err != nil {
		return 0, fmt.Errorf("template: read templates to cache: %w", err)
	}
	defer rows.Close()
	pipe := r.rdb.Pipeline()
	n := 0
	for rows.Next() {
		t, err := scanTemplate(rows)
		if err != nil {
			return 0, fmt.Errorf("template: read templates to cache: %w", err)
		}
		b, err := json.Marshal(t)
		if err != nil {
			return 0, fmt.Errorf("template: encode template %d: %w", t.ID, err)
		}
		pipe.Set(ctx, r.keys.template(t.ID), b, r.ttl)
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("template: read templates to cache: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("template: write template cache: %w", err)
	}
	return n, nil
}
