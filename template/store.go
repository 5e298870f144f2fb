package template

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// StoreConfig configures a Store. Zero values mean defaults.
type StoreConfig struct {
	// Now is the clock for created_at and updated_at; default time.Now.
	Now func() time.Time
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c StoreConfig) WithDefaults() StoreConfig {
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every problem of c (defaults applied first), joined;
// every StoreConfig is valid today.
func (c StoreConfig) Validate() error {
	return nil
}

// Store keeps templates in MySQL (table templates, see migrate/).
// The DSN must set parseTime=true and loc=UTC. It is safe for concurrent use.
type Store struct {
	db  *sql.DB
	now func() time.Time
}

// NewStore returns a store over db, or the problems of its arguments.
func NewStore(db *sql.DB, cfg StoreConfig) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("template: store needs a db")
	}
	return &Store{db: db, now: cfg.Now}, nil
}

const templateColumns = `id, name, type, value, threshold_cents, stock, issued, per_user_limit, substocks,
priority, grab_start, grab_end, valid_until, valid_days, version, created_at, updated_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanTemplate(r rowScanner) (Template, error) {
	var (
		t          Template
		typ        string
		validUntil sql.NullTime
		validDays  sql.NullInt64
		priority   string
	)
	err := r.Scan(&t.ID, &t.Name, &typ, &t.Value, &t.ThresholdCents, &t.Stock, &t.Issued,
		&t.PerUserLimit, &t.SubStocks, &priority, &t.GrabStart, &t.GrabEnd, &validUntil, &validDays, &t.Version,
		&t.CreatedAt, &t.UpdatedAt)
	if err != nil {
		return Template{}, err
	}
	t.Type = Type(typ)
	t.Priority = Priority(priority)
	t.Remaining = t.Stock - t.Issued
	if validUntil.Valid {
		t.ValidUntil = validUntil.Time.UTC()
	}
	if validDays.Valid {
		t.ValidDays = int(validDays.Int64)
	}
	t.GrabStart, t.GrabEnd = t.GrabStart.UTC(), t.GrabEnd.UTC()
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return t, nil
}

func nullTime(t time.Time) sql.NullTime { return sql.NullTime{Time: t, Valid: !t.IsZero()} }

func nullInt(n int) sql.NullInt64 { return sql.NullInt64{Int64: int64(n), Valid: n != 0} }

// Create validates d (see New) and stores it as a new template, returning
// it with its id, version 1 and timestamps. Its stock is recorded as the
// template's first stock_adds row in the same transaction; the coupon
// Service credits it to Redis (coupon.Service.Prepare).
func (s *Store) Create(ctx context.Context, d Draft) (t Template, err error) {
	t, err = New(d)
	if err != nil {
		return Template{}, err
	}
	now := norm(s.now())
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Template{}, fmt.Errorf("template: begin insert of template %q: %w", t.Name, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	res, err := tx.ExecContext(ctx, `INSERT INTO templates
(name, type, value, threshold_cents, stock, issued, per_user_limit, substocks, priority, grab_start, grab_end,
 valid_until, valid_days, version, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
		t.Name, string(t.Type), t.Value, t.ThresholdCents, t.Stock, t.PerUserLimit, t.SubStocks, string(t.Priority), t.GrabStart, t.GrabEnd,
		nullTime(t.ValidUntil), nullInt(t.ValidDays), now, now)
	if err != nil {
		return Template{}, fmt.Errorf("template: insert template %q: %w", t.Name, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return Template{}, fmt.Errorf("template: read new template id: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO stock_adds (template_id, amount, created_at) VALUES (?, ?, ?)",
		id, t.Stock, now); err != nil {
		return Template{}, fmt.Errorf("template: record stock of template %d: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return Template{}, fmt.Errorf("template: commit template %q: %w", t.Name, err)
	}
	t.ID, t.Version, t.CreatedAt, t.UpdatedAt = id, 1, now, now
	return t, nil
}

// AddStock raises template id's stock by n (1 to MaxStock, and the total
// stays at most MaxStock) and records the addition as a stock_adds row in
// the same transaction, returning the template and the addition's id.
//
// It lives here, not in coupon/, because the stock is a column of the
// template row: the addition locks that row, bumps its version and writes
// the stock_adds row in one transaction, as Create does for the first
// stock. Crediting the addition to the Redis sub-stocks is the coupon
// package's (coupon.Service.AddStock and its reconcile).
func (s *Store) AddStock(ctx context.Context, id, n int64) (t Template, addID int64, err error) {
	if n < 1 || n > MaxStock {
		return Template{}, 0, &ValidationError{Fields: []FieldError{{Field: "add", Message: fmt.Sprintf("must be 1 to %d, got %d", int64(MaxStock), n)}}}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Template{}, 0, fmt.Errorf("template: begin stock add to template %d: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	cur, err := scanTemplate(tx.QueryRowContext(ctx,
		"SELECT "+templateColumns+" FROM templates WHERE id = ? FOR UPDATE", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Template{}, 0, fmt.Errorf("add stock to template %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Template{}, 0, fmt.Errorf("template: lock template %d: %w", id, err)
	}
	if cur.Stock+n > MaxStock {
		return Template{}, 0, &ValidationError{Fields: []FieldError{{Field: "add",
			Message: fmt.Sprintf("stock would be %d; the most is %d", cur.Stock+n, int64(MaxStock))}}}
	}
	now := norm(s.now())
	if _, err := tx.ExecContext(ctx, "UPDATE templates SET stock = stock + ?, version = version + 1, updated_at = ? WHERE id = ?",
		n, now, id); err != nil {
		return Template{}, 0, fmt.Errorf("template: add stock to template %d: %w", id, err)
	}
	res, err := tx.ExecContext(ctx, "INSERT INTO stock_adds (template_id, amount, created_at) VALUES (?, ?, ?)", id, n, now)
	if err != nil {
		return Template{}, 0, fmt.Errorf("template: record stock add to template %d: %w", id, err)
	}
	if addID, err = res.LastInsertId(); err != nil {
		return Template{}, 0, fmt.Errorf("template: read stock add id: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Template{}, 0, fmt.Errorf("template: commit stock add to template %d: %w", id, err)
	}
	cur.Stock += n
	cur.Remaining += n
	cur.Version++
	cur.UpdatedAt = now
	return cur, addID, nil
}

// Get reads template id from MySQL; ErrNotFound if there is none.
func (s *Store) Get(ctx context.Context, id int64) (Template, error) {
	t, err := scanTemplate(s.db.QueryRowContext(ctx, "SELECT "+templateColumns+" FROM templates WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Template{}, fmt.Errorf("get template %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Template{}, fmt.Errorf("template: get template %d: %w", id, err)
	}
	return t, nil
}

// Update applies p to template id and returns the result. A change of
// grab_start is refused with ErrHasSubscribers when any subscription row
// refers to the template; the check and the write are one transaction with
// locking reads, so no subscription slips in between. A patch that changes
// nothing writes nothing. Invalid values return a *ValidationError.
func (s *Store) Update(ctx context.Context, id int64, p Patch) (t Template, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Template{}, fmt.Errorf("template: begin update of template %d: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	cur, err := scanTemplate(tx.QueryRowContext(ctx,
		"SELECT "+templateColumns+" FROM templates WHERE id = ? FOR UPDATE", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Template{}, fmt.Errorf("update template %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Template{}, fmt.Errorf("template: lock template %d: %w", id, err)
	}
	next, startChanged, err := cur.apply(p)
	if err != nil {
		return Template{}, err
	}
	if startChanged {
		// A locking read sees the latest committed rows and, under
		// REPEATABLE READ, locks the gap so no insert can follow it.
		// Subscription inserts also read this template row with a shared
		// lock (see subscription.Service), which our exclusive lock blocks.
		var one int
		err := tx.QueryRowContext(ctx,
			"SELECT 1 FROM subscriptions WHERE template_id = ? LIMIT 1 FOR UPDATE", id).Scan(&one)
		switch {
		case err == nil:
			return Template{}, fmt.Errorf("update template %d: %w", id, ErrHasSubscribers)
		case !errors.Is(err, sql.ErrNoRows):
			return Template{}, fmt.Errorf("template: check subscribers of template %d: %w", id, err)
		}
	}
	if next.Name == cur.Name && next.Priority == cur.Priority &&
		next.GrabStart.Equal(cur.GrabStart) && next.GrabEnd.Equal(cur.GrabEnd) {
		if err := tx.Commit(); err != nil {
			return Template{}, fmt.Errorf("template: end no-op update of template %d: %w", id, err)
		}
		return cur, nil
	}
	now := norm(s.now())
	if _, err := tx.ExecContext(ctx, `UPDATE templates
SET name = ?, priority = ?, grab_start = ?, grab_end = ?, version = version + 1, updated_at = ?
WHERE id = ?`, next.Name, string(next.Priority), next.GrabStart, next.GrabEnd, now, id); err != nil {
		return Template{}, fmt.Errorf("template: update template %d: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return Template{}, fmt.Errorf("template: commit update of template %d: %w", id, err)
	}
	next.Version++
	next.UpdatedAt = now
	return next, nil
}
