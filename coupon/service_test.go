package coupon

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"couponpush/internal/enginetest"
	"couponpush/migrate"
	"couponpush/template"
)

// fixture is one test's coupon stack on the shared engines: its own
// database and Redis key prefix.
type fixture struct {
	t      testing.TB
	dsn    string
	db     *sql.DB
	rdb    redis.UniversalClient
	prefix string
	store  *template.Store
	cache  *template.Cache
	svc    *Service
}

type fixtureOpt func(*Config)

func openDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newRedisClient(t testing.TB, addrs ...string) redis.UniversalClient {
	t.Helper()
	if len(addrs) == 0 {
		addrs = []string{enginetest.RedisAddr(t)}
	}
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, PoolSize: 64, PoolTimeout: 30 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newFixture(t testing.TB, rdb redis.UniversalClient, opts ...fixtureOpt) *fixture {
	t.Helper()
	if rdb == nil {
		rdb = newRedisClient(t)
	}
	f := &fixture{t: t, rdb: rdb, prefix: enginetest.Prefix(t)}
	f.dsn = newDSN(t)
	f.db = openDB(t, f.dsn)
	if _, err := migrate.Up(context.Background(), f.db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	f.db.SetMaxOpenConns(32)
	// The first service writes claims through a pool that interpolates
	// parameters, as the worker's does; the others through DB.
	cfg, err := mysql.ParseDSN(f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.InterpolateParams = true
	writeDB := openDB(t, cfg.FormatDSN())
	opts = append([]fixtureOpt{func(c *Config) { c.WriteDB = writeDB }}, opts...)
	if f.store, err = template.NewStore(f.db, template.StoreConfig{}); err != nil {
		t.Fatal(err)
	}
	if f.cache, err = template.NewCache(f.store, template.CacheConfig{}); err != nil {
		t.Fatal(err)
	}
	f.svc = f.service(opts...)
	return f
}

// service returns another Service over the fixture's engines (another
// process, as far as they can tell).
func (f *fixture) service(opts ...fixtureOpt) *Service {
	cfg := Config{DB: f.db, Redis: f.rdb, Prefix: f.prefix, Templates: f.cache, Stock: f.store, Invalidate: f.cache.Invalidate}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := NewService(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// liveTemplate creates a template claimable now and credits its stock.
func (f *fixture) liveTemplate(t testing.TB, stock int64, perUser, subs int) template.Template {
	t.Helper()
	now := time.Now()
	d := template.Draft{Name: "hot", Type: template.Fixed, Value: 500, Stock: stock, PerUserLimit: &perUser, SubStocks: &subs,
		GrabStart: now.Add(-time.Hour), GrabEnd: now.Add(time.Hour), ValidDays: ptr(7)}
	tm, err := f.store.Create(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if tm, err = f.svc.Prepare(context.Background(), tm); err != nil {
		t.Fatal(err)
	}
	return tm
}

// issued counts the template's coupons in MySQL.
func (f *fixture) issued(t testing.TB, template int64) int64 {
	t.Helper()
	var n int64
	if err := f.db.QueryRow("SELECT COUNT(*) FROM coupons WHERE template_id = ?", template).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// maxPerUser is the most coupons of template one user holds in MySQL.
func (f *fixture) maxPerUser(t testing.TB, template int64) int64 {
	t.Helper()
	var n sql.NullInt64
	if err := f.db.QueryRow("SELECT MAX(c) FROM (SELECT COUNT(*) c FROM coupons WHERE template_id = ? GROUP BY user_id) x", template).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n.Int64
}

// checkBooks asserts the stock adds up: Redis left + MySQL rows == stock,
// no hold in flight, and reconcile finds no drift.
func (f *fixture) checkBooks(t testing.TB, tm template.Template) {
	t.Helper()
	ctx := context.Background()
	left, err := f.svc.Remaining(ctx, tm)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := f.store.Get(ctx, tm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.issued(t, tm.ID); left+n != cur.Stock {
		t.Errorf("Redis left %d + MySQL coupons %d = %d, want stock %d", left, n, left+n, cur.Stock)
	}
	if h := f.holds(t, tm); h != 0 {
		t.Errorf("%d holds still in flight", h)
	}
	res, err := f.svc.ReconcileTemplate(ctx, tm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.Drift != 0 || res.Missing != 0 {
		t.Errorf("reconcile found %+v, want no drift", res)
	}
}

// holds counts the claims in flight in the template's sub-stocks.
func (f *fixture) holds(t testing.TB, tm template.Template) int {
	t.Helper()
	n := 0
	for i := range tm.SubStocks {
		snap, err := f.svc.snapshot(context.Background(), f.svc.keys.sub(tm.ID, i))
		if err != nil {
			t.Fatal(err)
		}
		n += len(snap.holds)
	}
	return n
}

func rid(parts ...any) string {
	s := "r"
	for _, p := range parts {
		s += "-" + fmt.Sprint(p)
	}
	return s
}
