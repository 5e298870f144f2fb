package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"couponpush/client"
	"couponpush/config"
	"couponpush/internal/devtoken"
	"couponpush/worker"
)

// ClaimConfig is what the claim bench measures and where the engines are.
type ClaimConfig struct {
	// Engines, as scripts/engines.sh start writes them.
	RedisAddr, MySQLDSN, ConsulAddr string

	Clients   int           // concurrent HTTP clients (and baseline connections)
	For       time.Duration // how long each load runs
	Stock     int64         // the hot template's stock
	SubStocks int           // its sub-stock count
	Workers   int           // in-process workers serving the API
	// CPUProfile, if set, is where a CPU profile of the claim load goes.
	CPUProfile string
	// AuthOff runs the workers with auth off; by default each claim
	// carries its user's HS256 token, verified by the worker.
	AuthOff bool
	Logger  *slog.Logger
}

// RunClaims measures durable claims over HTTP on one hot template, then,
// in the same run, the row-lock baseline: a single-row SELECT ... FOR
// UPDATE transaction per claim straight to MariaDB; it prints both and the
// ratio to out.
func RunClaims(ctx context.Context, cfg ClaimConfig, out io.Writer) error {
	prefix := fmt.Sprintf("claimbench%d", time.Now().UnixNano()%1_000_000_000)
	db, dsn, err := freshDB(ctx, cfg.MySQLDSN, "couponpush_claimbench")
	if err != nil {
		return err
	}
	defer db.Close()
	cfg.MySQLDSN = dsn
	db.SetMaxOpenConns(cfg.Clients + 8)
	db.SetMaxIdleConns(cfg.Clients + 8)
	var flush, version string
	if err := db.QueryRowContext(ctx, "SELECT @@innodb_flush_log_at_trx_commit, @@version").Scan(&flush, &version); err != nil {
		return fmt.Errorf("mysql: %w", err)
	}
	tokens, err := identity(cfg.AuthOff)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "couponpush claim bench: %d HTTP clients, %d worker(s) in-process, %s, MariaDB %s innodb_flush_log_at_trx_commit=%s, prefix %s\n",
		cfg.Clients, cfg.Workers, authName(tokens), version, flush, prefix)

	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var apis []*client.Client
	for i := range cfg.Workers {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		wc := config.Worker{
			Roles: []string{config.RoleAPI}, HTTPAddr: addr, OpsAddr: "127.0.0.1:0", RedisAddrs: []string{cfg.RedisAddr}, RedisPrefix: prefix,
			MySQLDSN: cfg.MySQLDSN, ConsulAddr: cfg.ConsulAddr, ConsulPrefix: prefix, ServiceName: prefix,
			WorkerID: fmt.Sprintf("%s-w%d", prefix, i+1), LogLevel: "warn", RateLimits: config.RateLimitsOff,
		}
		wc = withIdentity(wc, tokens).WithDefaults()
		if err := wc.Validate(); err != nil {
			return err
		}
		w, err := worker.Start(ctx, wc, log)
		if err != nil {
			return err
		}
		defer func() { _ = w.Stop() }()
		c, err := apiClient("http://"+addr, tokens.Operator)
		if err != nil {
			return err
		}
		apis = append(apis, c)
	}

	// The hot template.
	now := time.Now().UTC()
	tpl, err := apis[0].CreateTemplate(ctx, client.TemplateDraft{
		Name: "hot", Type: client.TypeFixed, Value: 500, Stock: cfg.Stock, SubStocks: cfg.SubStocks,
		GrabStart: now.Add(-time.Minute), GrabEnd: now.Add(time.Hour), ValidDays: 7})
	if err != nil {
		return fmt.Errorf("create template: %w", err)
	}
	// Warm up connections and caches, outside the measurement.
	if _, _, err := claimLoad(ctx, apis, tokens, tpl.ID, cfg.Clients, 500*time.Millisecond); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	before, err := countRows(ctx, db, "SELECT COUNT(*) FROM coupons WHERE template_id = ?", tpl.ID)
	if err != nil {
		return err
	}
	stopProfile, err := startProfile(cfg.CPUProfile)
	if err != nil {
		return err
	}
	ok, lat, err := claimLoad(ctx, apis, tokens, tpl.ID, cfg.Clients, cfg.For)
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	after, err := countRows(ctx, db, "SELECT COUNT(*) FROM coupons WHERE template_id = ?", tpl.ID)
	if err != nil {
		return err
	}
	if after-before != ok {
		return fmt.Errorf("%d claims answered 201 but MySQL gained %d rows", ok, after-before)
	}
	ours := float64(ok) / cfg.For.Seconds()
	fmt.Fprintf(out, "\nclaims over HTTP: %d durable claims (rows counted in MySQL) in %v: %.0f/s  latency p50 %v p99 %v\n",
		ok, cfg.For, ours, lat.p(50), lat.p(99))

	// The baseline's pool interpolates parameters like the claim writer's,
	// so each of its statements is one round trip too.
	bdsn, err := mysql.ParseDSN(dsn)
	if err != nil {
		return err
	}
	bdsn.InterpolateParams = true
	bdb, err := sql.Open("mysql", bdsn.FormatDSN())
	if err != nil {
		return err
	}
	defer bdb.Close()
	bdb.SetMaxOpenConns(cfg.Clients)
	bdb.SetMaxIdleConns(cfg.Clients)
	base, err := rowLockBaseline(ctx, bdb, cfg.Clients, cfg.For, cfg.Stock)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	baseRate := float64(base) / cfg.For.Seconds()
	fmt.Fprintf(out, "row-lock baseline (BEGIN; SELECT ... FOR UPDATE; UPDATE; INSERT; COMMIT), %d connections: %d claims in %v: %.0f/s\n",
		cfg.Clients, base, cfg.For, baseRate)
	fmt.Fprintf(out, "ours / baseline: %.2f×\n", ours/baseRate)
	return nil
}

// freshDB drops and creates database name on the server of dsn and opens
// it; it returns the pool and the DSN that names it.
func freshDB(ctx context.Context, dsn, name string) (*sql.DB, string, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, "", fmt.Errorf("mysql dsn: %w", err)
	}
	c.DBName = ""
	admin, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		return nil, "", err
	}
	defer admin.Close()
	for _, q := range []string{"DROP DATABASE IF EXISTS " + name, "CREATE DATABASE " + name} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			return nil, "", fmt.Errorf("mysql: %s: %w", q, err)
		}
	}
	c.DBName, c.ParseTime, c.Loc = name, true, time.UTC
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		return nil, "", err
	}
	return db, c.FormatDSN(), nil
}

func countRows(ctx context.Context, db *sql.DB, q string, args ...any) (int64, error) {
	var n int64
	if err := db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count: %w", err)
	}
	return n, nil
}

var claimUsers atomic.Int64

// claimLoad claims from clients goroutines for d, each claim a new user
// and request_id, spread over the workers; it returns how many were
// answered 201 and their latencies. Any other answer is an error. Each
// claim carries its user's token (signed here, inside the latency), unless
// tokens is zero.
func claimLoad(ctx context.Context, apis []*client.Client, tokens devtoken.Tokens, template int64, clients int, d time.Duration) (int64, lateness, error) {
	var (
		ok    atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		lat   lateness
	)
	stop := time.Now().Add(d)
	for g := range clients {
		wg.Go(func() {
			var mine lateness
			for time.Now().Before(stop) {
				u := claimUsers.Add(1)
				t0 := time.Now()
				tok, err := tokens.User(u)
				if err == nil {
					// Discard: the answer is read, not decoded, so the
					// clients take less of the CPU the system under test
					// needs.
					var created bool
					_, created, err = apis[g%len(apis)].Claim(ctx, template, client.ClaimRequest{UserID: u, RequestID: "b" + strconv.FormatInt(u, 10)},
						client.WithToken(tok), client.Discard())
					if err == nil && !created {
						err = fmt.Errorf("the claim of user %d answered 200, not 201", u)
					}
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
				ok.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(lat)
	return ok.Load(), lat, first
}

// rowLockBaseline claims the classic way: one stock row locked per claim.
func rowLockBaseline(ctx context.Context, db *sql.DB, clients int, d time.Duration, stock int64) (int64, error) {
	for _, q := range []string{
		"CREATE TABLE IF NOT EXISTS baseline_stock (id BIGINT PRIMARY KEY, remaining BIGINT NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE IF NOT EXISTS baseline_claims (id BIGINT AUTO_INCREMENT PRIMARY KEY, user_id BIGINT NOT NULL, request_id VARCHAR(64) NOT NULL, UNIQUE KEY (request_id)) ENGINE=InnoDB",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return 0, err
		}
	}
	if _, err := db.ExecContext(ctx, "REPLACE INTO baseline_stock VALUES (1, ?)", stock); err != nil {
		return 0, err
	}
	var (
		ok    atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		users atomic.Int64
	)
	stop := time.Now().Add(d)
	for range clients {
		wg.Go(func() {
			for time.Now().Before(stop) {
				u := users.Add(1)
				if err := baselineClaim(ctx, db, u); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if first != nil {
		return 0, first
	}
	rows, err := countRows(ctx, db, "SELECT COUNT(*) FROM baseline_claims")
	if err != nil {
		return 0, err
	}
	if rows != ok.Load() {
		return 0, fmt.Errorf("%d baseline claims committed but %d rows", ok.Load(), rows)
	}
	return rows, nil
}

func baselineClaim(ctx context.Context, db *sql.DB, user int64) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var left int64
	if err := tx.QueryRowContext(ctx, "SELECT remaining FROM baseline_stock WHERE id = 1 FOR UPDATE").Scan(&left); err != nil {
		return err
	}
	if left <= 0 {
		return fmt.Errorf("baseline sold out")
	}
	if _, err := tx.ExecContext(ctx, "UPDATE baseline_stock SET remaining = remaining - 1 WHERE id = 1"); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO baseline_claims (user_id, request_id) VALUES (?, ?)", user, "b"+strconv.FormatInt(user, 10)); err != nil {
		return err
	}
	return tx.Commit()
}
