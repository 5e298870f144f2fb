package main

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"couponpush/cluster"
	"couponpush/internal/enginetest"
	"couponpush/migrate"
	"couponpush/queue"
)

// engines are one test's view of the shared Consul, Redis and MySQL: its
// own Consul and Redis prefix, and a migrated database of its own.
type engines struct {
	consulAddr, redisAddr, dsn, prefix string

	consul *cluster.Client
	rdb    redis.UniversalClient
	queue  *queue.Client
	db     *sql.DB
}

func newEngines(t *testing.T) *engines {
	t.Helper()
	e := &engines{
		consulAddr: enginetest.Consul(t),
		redisAddr:  enginetest.RedisAddr(t),
		dsn:        enginetest.MySQL(t),
		prefix:     enginetest.Prefix(t),
	}
	var err error
	if e.consul, err = cluster.New(cluster.Config{Addr: e.consulAddr, Prefix: e.prefix}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.consul.Close)
	e.rdb = redis.NewClient(&redis.Options{Addr: e.redisAddr})
	t.Cleanup(func() { _ = e.rdb.Close() })
	if e.queue, err = queue.New(e.rdb, queue.Options{Prefix: e.prefix}); err != nil {
		t.Fatal(err)
	}
	if e.db, err = sql.Open("mysql", e.dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := migrate.Up(ctx, e.db); err != nil {
		t.Fatal(err)
	}
	return e
}

// flags point run at e's engines and names; extra flags come last and win.
func (e *engines) flags(extra ...string) []string {
	return append([]string{
		"-consul", e.consulAddr, "-prefix", e.prefix, "-service", e.prefix,
		"-redis", e.redisAddr, "-redis-prefix", e.prefix, "-mysql", e.dsn,
	}, extra...)
}

// subscribe writes a subscriptions row as the subscription service does.
func (e *engines) subscribe(t *testing.T, user, tid int64, at time.Time, status string, version int64, pushID string) {
	t.Helper()
	now := time.Now().UTC()
	var id, sentAt any
	if pushID != "" {
		id, sentAt = pushID, at
	}
	if _, err := e.db.Exec(`INSERT INTO subscriptions (user_id, template_id, push_at, status, version, push_id, sent_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, user, tid, at.UTC(), status, version, id, sentAt, now, now); err != nil {
		t.Fatal(err)
	}
}
