package coupon

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/finish"
	"couponpush/template"
)

// Service defaults.
const (
	// DefaultPrefix is the Redis key prefix of a Config without one.
	DefaultPrefix = "couponpush"
	// DefaultWriteBudget is the claim write budget of a Config without one:
	// a claim whose reservation is this old gives up before writing.
	DefaultWriteBudget       = 10 * time.Second
	DefaultReconcileDeadline = 2 * time.Minute
	DefaultHintTTL           = time.Second
	DefaultRetainAfterEnd    = 24 * time.Hour
)

// Templates is where the Service reads templates; *template.Cache is one.
type Templates interface {
	Get(ctx context.Context, id int64) (template.Template, error)
}

// Config configures a Service. DB, Redis and Templates are required; zero
// values elsewhere mean defaults.
type Config struct {
	// DB is MySQL with the migrations applied (parseTime=true, loc=UTC).
	DB *sql.DB
	// WriteDB, if set, is the pool the claim writer's INSERTs use; default
	// DB. A pool whose DSN sets interpolateParams=true sends each batch as
	// one statement instead of a prepare, an execute and a close.
	WriteDB *sql.DB
	// Redis holds the sub-stocks and reservations (standalone or Cluster).
	Redis redis.UniversalClient
	// Prefix starts every Redis key; default DefaultPrefix.
	Prefix string
	// Templates reads templates (local memory, then Redis, then MySQL).
	Templates Templates
	// Stock adds stock to templates in MySQL (*template.Redis and
	// *template.Store are ones); nil refuses AddStock.
	Stock StockAdder
	// Invalidate, if set, drops a template from the local memory cache
	// after this Service changed it (template.Cache.Invalidate).
	Invalidate func(id int64)
	// WriteBudget is the most time from a claim's reservation to sending
	// its MySQL write: later, the claim gives up before writing (and the
	// take script refuses a reservation this old). Default 10s.
	WriteBudget time.Duration
	// ReconcileDeadline: reconcile settles a claim still in flight after
	// this long (by looking at MySQL). It must exceed WriteBudget plus the
	// longest a sent INSERT can take (innodb_lock_wait_timeout, 50s by
	// default), so no write can commit after it is settled. Default 2m.
	ReconcileDeadline time.Duration
	// HintTTL is how long this process skips a sub-stock it found empty;
	// default 1s. Stock added to it is tried again after this long.
	HintTTL time.Duration
	// RetainAfterEnd is how long after grab_end a user's reservations stay
	// in Redis; later retries are answered from MySQL. Default 24h.
	RetainAfterEnd time.Duration
	// Now is the clock for grab windows, expiry and timestamps.
	Now func() time.Time
	// Logger receives the service's warnings and debug notes; nil discards.
	Logger *slog.Logger
	// Step, if set, is told each step of a claim (StepReserved, ...) with
	// the claim's context, for tests that end a caller at a chosen step.
	Step func(ctx context.Context, step string)
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.WriteDB == nil {
		c.WriteDB = c.DB
	}
	if c.WriteBudget == 0 {
		c.WriteBudget = DefaultWriteBudget
	}
	if c.ReconcileDeadline == 0 {
		c.ReconcileDeadline = DefaultReconcileDeadline
	}
	if c.HintTTL == 0 {
		c.HintTTL = DefaultHintTTL
	}
	if c.RetainAfterEnd == 0 {
		c.RetainAfterEnd = DefaultRetainAfterEnd
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c (defaults applied first), joined.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("coupon: config: "+format, args...)) }
	if c.DB == nil {
		bad("DB is required")
	}
	if c.Redis == nil {
		bad("Redis is required")
	}
	if c.Templates == nil {
		bad("Templates is required")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"WriteBudget", c.WriteBudget}, {"ReconcileDeadline", c.ReconcileDeadline}, {"HintTTL", c.HintTTL}, {"RetainAfterEnd", c.RetainAfterEnd}} {
		if d.v < 0 {
			bad("%s must not be negative, got %v", d.name, d.v)
		}
	}
	return errors.Join(errs...)
}

// StockAdder raises a template's stock in MySQL and records the addition
// (see template.Store.AddStock).
type StockAdder interface {
	AddStock(ctx context.Context, id, n int64) (template.Template, int64, error)
}

// Service issues, reads and changes coupons: claims with the Redis
// sub-stocks and a group-committed MySQL write, lock/unlock/redeem, expiry,
// and the reconcile of Redis stock with MySQL. Safe for concurrent use.
type Service struct {
	db        *sql.DB
	rdb       redis.UniversalClient
	keys      keys
	templates Templates
	cfg       Config
	now       func() time.Time
	log       *slog.Logger
	writer    *claimWriter
	ids       *idAllocator
	pipe      *pipeliner

	finish finish.Group // claim writes that complete after their caller left

	hintMu sync.Mutex
	hints  map[int64][]time.Time // template → per sub-stock: empty until
}

// NewService returns a Service, or the problems of cfg (see Validate).
func NewService(cfg Config) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{
		db: cfg.DB, rdb: cfg.Redis, keys: keys{prefix: cfg.Prefix}, templates: cfg.Templates,
		cfg: cfg, now: cfg.Now, log: cfg.Logger, hints: map[int64][]time.Time{},
	}
	s.writer = newClaimWriter(s)
	s.pipe = newPipeliner(cfg.Redis)
	s.ids = &idAllocator{s: s, key: s.keys.couponIDs(), nextID: 1}
	return s, nil
}

// shares splits amount over n sub-stocks as evenly as possible.
func shares(amount int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = amount / int64(n)
		if int64(i) < amount%int64(n) {
			out[i]++
		}
	}
	return out
}

// ApplyStockAdds credits to Redis every stock_adds row of template t not
// yet applied (each sub-stock takes its share once, whatever is retried),
// then marks them applied. Template creation and AddStock call it; so does
// reconcile, for a crash in between.
func (s *Service) ApplyStockAdds(ctx context.Context, t template.Template) error {
	rows, err := s.db.QueryContext(ctx, "SELECT id, amount FROM stock_adds WHERE template_id = ? AND applied = 0 ORDER BY id", t.ID)
	if err != nil {
		return fmt.Errorf("coupon: read stock adds of template %d: %w", t.ID, err)
	}
	type add struct{ id, amount int64 }
	var adds []add
	for rows.Next() {
		var a add
		if err := rows.Scan(&a.id, &a.amount); err != nil {
			rows.Close()
			return fmt.Errorf("coupon: read stock adds of template %d: %w", t.ID, err)
		}
		adds = append(adds, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("coupon: read stock adds of template %d: %w", t.ID, err)
	}
	for _, a := range adds {
		for i, n := range shares(a.amount, t.SubStocks) {
			if err := creditScript.Run(ctx, s.rdb, []string{s.keys.sub(t.ID, i)}, a.id, n).Err(); err != nil {
				return fmt.Errorf("coupon: credit stock add %d to template %d sub-stock %d: %w", a.id, t.ID, i, err)
			}
		}
		if _, err := s.db.ExecContext(ctx, "UPDATE stock_adds SET applied = 1 WHERE id = ?", a.id); err != nil {
			return fmt.Errorf("coupon: mark stock add %d applied: %w", a.id, err)
		}
	}
	s.clearHints(t.ID)
	return nil
}

// Prepare credits a new template's stock to Redis; call it after the
// template is created. If it fails, reconcile credits it later.
func (s *Service) Prepare(ctx context.Context, t template.Template) (template.Template, error) {
	if err := s.ApplyStockAdds(ctx, t); err != nil {
		return t, err
	}
	return s.withRemaining(ctx, t)
}

// Template returns template id with Remaining (and Issued) from its Redis
// sub-stocks.
func (s *Service) Template(ctx context.Context, id int64) (template.Template, error) {
	t, err := s.templates.Get(ctx, id)
	if err != nil {
		return template.Template{}, err
	}
	return s.withRemaining(ctx, t)
}

func (s *Service) withRemaining(ctx context.Context, t template.Template) (template.Template, error) {
	left, err := s.Remaining(ctx, t)
	if err != nil {
		return template.Template{}, err
	}
	t.Remaining, t.Issued = left, t.Stock-left
	return t, nil
}

// AddStock adds n coupons to template id's stock, live: MySQL first (with
// a stock_adds row, in one transaction), then each sub-stock takes its
// share once. A crash in between leaves the add for reconcile, which
// credits it; it is never credited twice, so it cannot over-issue.
func (s *Service) AddStock(ctx context.Context, id, n int64) (template.Template, error) {
	if s.cfg.Stock == nil {
		return template.Template{}, errors.New("coupon: AddStock needs Config.Stock")
	}
	t, _, err := s.cfg.Stock.AddStock(ctx, id, n)
	if err != nil {
		return template.Template{}, err
	}
	if s.cfg.Invalidate != nil {
		s.cfg.Invalidate(id)
	}
	if err := s.ApplyStockAdds(ctx, t); err != nil {
		return template.Template{}, err
	}
	return s.withRemaining(ctx, t)
}

// Remaining returns the coupons template t can still issue, by its Redis
// sub-stocks (claims in flight count as issued).
func (s *Service) Remaining(ctx context.Context, t template.Template) (int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, t.SubStocks)
	for i := range cmds {
		cmds[i] = pipe.HGet(ctx, s.keys.sub(t.ID, i), "left")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("coupon: read stock of template %d: %w", t.ID, err)
	}
	var sum int64
	for _, c := range cmds {
		n, err := c.Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("coupon: read stock of template %d: %w", t.ID, err)
		}
		sum += n
	}
	return sum, nil
}

// hinted reports the sub-stocks of t this process found empty lately.
func (s *Service) hinted(t template.Template) []bool {
	s.hintMu.Lock()
	defer s.hintMu.Unlock()
	out := make([]bool, t.SubStocks)
	h := s.hints[t.ID]
	if h == nil {
		return out
	}
	now := time.Now()
	for i := range out {
		out[i] = i < len(h) && now.Before(h[i])
	}
	return out
}

func (s *Service) hintEmpty(t template.Template, i int) {
	s.hintMu.Lock()
	defer s.hintMu.Unlock()
	if len(s.hints) >= maxHinted {
		clear(s.hints) // hints are only a shortcut; a bound keeps them small
	}
	h := s.hints[t.ID]
	if len(h) < t.SubStocks {
		h = append(h, make([]time.Time, t.SubStocks-len(h))...)
		s.hints[t.ID] = h
	}
	h[i] = time.Now().Add(s.cfg.HintTTL)
}

func (s *Service) clearHints(template int64) {
	s.hintMu.Lock()
	defer s.hintMu.Unlock()
	delete(s.hints, template)
}

// maxHinted bounds how many templates keep empty-sub-stock hints.
const maxHinted = 10_000

// norm is the stored form of a time: UTC, millisecond precision, as the
// DATETIME(3) columns hold it (the template package stores its times the
// same way).
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Millisecond)
}

type rowScanner interface{ Scan(dest ...any) error }

// Stop waits for claim writes whose callers left, then ends the claim
// writer after the batches in hand.
func (s *Service) Stop() {
	s.finish.Wait()
	s.writer.stop()
}
