// Package reindex is the safety net behind the Redis schedule index: a cron
// job that finds pending subscriptions due soon that the index lacks (a PUT
// whose Redis write failed and was never retried) and indexes them.
//
// It only looks at reminders due after now+Margin: a reminder that close to
// its time may already have been taken and sent, with its sent-mark still
// on its way to MySQL, and indexing it again would send it twice. Margin
// must therefore exceed the merge window plus the worst clock skew.
package reindex

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"couponpush/queue"
)

// Index is the part of the queue index the job uses; *queue.Router is one
// (it follows the live queue layout, also while N changes).
type Index interface {
	Indexed(ctx context.Context, entries []queue.Entry) ([]bool, error)
	Add(ctx context.Context, e queue.Entry) error
}

// Config configures a Job. Zero values mean the defaults.
type Config struct {
	Margin  time.Duration    // skip reminders due before now+Margin; default 30 s
	Horizon time.Duration    // look at reminders due up to now+Horizon; default 10 min
	Page    int              // rows per MySQL query; default 1000
	Now     func() time.Time // clock of the window; default time.Now
	// Logger receives each run's repairs; nil discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Margin == 0 {
		c.Margin = 30 * time.Second
	}
	if c.Horizon == 0 {
		c.Horizon = 10 * time.Minute
	}
	if c.Page == 0 {
		c.Page = 1000
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
	if c.Margin < 0 || c.Horizon <= c.Margin {
		errs = append(errs, fmt.Errorf("reindex: need 0 ≤ margin < horizon, got margin %v, horizon %v", c.Margin, c.Horizon))
	}
	if c.Page < 1 {
		errs = append(errs, fmt.Errorf("reindex: need page ≥ 1, got %d", c.Page))
	}
	return errors.Join(errs...)
}

// Job re-indexes pending reminders missing from Redis.
type Job struct {
	db  *sql.DB
	idx Index
	cfg Config
}

// New returns a Job reading subscriptions from db.
func New(db *sql.DB, idx Index, cfg Config) (*Job, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Job{db: db, idx: idx, cfg: cfg}, nil
}

// Result counts one run.
type Result struct {
	Checked  int // pending reminders in the window
	Repaired int // of those, indexed by this run
}

// Run checks every pending reminder due in (now+Margin, now+Horizon] and
// indexes the missing ones. Adding is idempotent and version-aware, so a
// run racing a PUT or a DELETE cannot revive a cancel.
func (j *Job) Run(ctx context.Context) (Result, error) {
	now := j.cfg.Now()
	from, to := now.Add(j.cfg.Margin), now.Add(j.cfg.Horizon)
	var res Result
	var afterID int64
	for {
		rows, err := j.db.QueryContext(ctx, `SELECT id, user_id, template_id, push_at, version FROM subscriptions
			WHERE status = 'pending' AND push_at > ? AND push_at <= ? AND id > ? ORDER BY id LIMIT ?`,
			from.UTC(), to.UTC(), afterID, j.cfg.Page)
		if err != nil {
			return res, fmt.Errorf("reindex: read pending: %w", err)
		}
		var page []queue.Entry
		for rows.Next() {
			var e queue.Entry
			if err := rows.Scan(&afterID, &e.UserID, &e.TemplateID, &e.PushAt, &e.Version); err != nil {
				rows.Close()
				return res, fmt.Errorf("reindex: read pending: %w", err)
			}
			page = append(page, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return res, fmt.Errorf("reindex: read pending: %w", err)
		}
		if len(page) == 0 {
			return res, nil
		}
		res.Checked += len(page)
		has, err := j.idx.Indexed(ctx, page)
		if err != nil {
			return res, fmt.Errorf("reindex: %w", err)
		}
		for i, e := range page {
			if has[i] {
				continue
			}
			if err := j.idx.Add(ctx, e); err != nil {
				return res, fmt.Errorf("reindex: %w", err)
			}
			res.Repaired++
			j.cfg.Logger.Warn("re-indexed a pending reminder the index lacked", "user_id", e.UserID, "template_id", e.TemplateID, "push_at", e.PushAt)
		}
		if len(page) < j.cfg.Page {
			return res, nil
		}
	}
}
