// Package reindex is the safety net behind the Redis schedule index: a cron
// job that finds pending subscriptions due soon that the index lacks (a PUT
// whose Redis write failed and was never retried) and indexes them.
//
// It only looks at reminders due after now+Margin: a reminder that close to
// its time may already have been taken and sent, with its sent-mark still
// on its way to MySQL, and indexing it again would send it twice. Margin
// must therefore exceed the merge window plus the worst clock skew.
//
// It also moves pending reminders in its window to their template's
// current priority when a PATCH changed it after they were indexed, so a
// reminder has, from Margin before it is due, the priority its template
// had at the last run that saw it.
//
// It also finds rows pending in MySQL whose index entry is a tombstone at
// the row's version or newer: a DELETE wrote the tombstone and then its
// MySQL write failed, so the reminder would never be pushed although MySQL
// (and every read) says pending. A DELETE in progress looks the same for
// a moment, so a row is repaired only when a later run, at least Grace
// after the first, finds it unchanged: the row's version is moved above
// the tombstone (a compare-and-set, so a DELETE that goes on wins) and the
// reminder indexed there.
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
	// Records reads what the index holds for each entry (State 0: none).
	Records(ctx context.Context, entries []queue.Entry) ([]queue.RecordEntry, error)
	Add(ctx context.Context, e queue.Entry) error
}

// Config configures a Job. Zero values mean the defaults.
type Config struct {
	Margin  time.Duration // skip reminders due before now+Margin; default 30 s
	Horizon time.Duration // look at reminders due up to now+Horizon; default 10 min
	Page    int           // rows per MySQL query; default 1000
	// Grace: a pending row under a newer tombstone is repaired when seen so
	// again at least this long after first; longer than a DELETE can take
	// (request deadline plus its completing writes). Default 1 min.
	Grace time.Duration
	Now   func() time.Time // clock of the window; default time.Now
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
	if c.Grace == 0 {
		c.Grace = time.Minute
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
	if c.Grace < 0 {
		errs = append(errs, fmt.Errorf("reindex: need grace ≥ 0, got %v", c.Grace))
	}
	return errors.Join(errs...)
}

// Job re-indexes pending reminders missing from Redis.
type Job struct {
	db  *sql.DB
	idx Index
	cfg Config

	suspects map[suspectKey]suspect // pending rows under a newer tombstone, by the run that first saw them
}

type suspectKey struct{ user, template int64 }

// suspect is one pending row seen under a newer tombstone.
type suspect struct {
	row, tomb int64 // the row's and the tombstone's versions
	since     time.Time
}

// New returns a Job reading subscriptions from db.
func New(db *sql.DB, idx Index, cfg Config) (*Job, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Job{db: db, idx: idx, cfg: cfg, suspects: map[suspectKey]suspect{}}, nil
}

// Result counts one run.
type Result struct {
	Checked  int // pending reminders in the window
	Repaired int // of those, indexed by this run
	// Tombstoned: of those, under a newer tombstone (a failed DELETE, or
	// one in progress); Revived: of these, repaired by this run.
	Tombstoned, Revived int
	// Reclassed: pending reminders indexed under a priority their template
	// no longer has (a PATCH since), re-added under its current one (an
	// add that found the reminder taken meanwhile counts too).
	Reclassed int
}

// Run checks every pending reminder due in (now+Margin, now+Horizon] and
// indexes the missing ones. Adding is idempotent and version-aware, so a
// run racing a PUT or a DELETE cannot revive a cancel. Rows under a newer
// tombstone are repaired once seen so for Grace (see the package doc).
// Run is not safe for concurrent use (the cron lock runs one at a time).
func (j *Job) Run(ctx context.Context) (Result, error) {
	now := j.cfg.Now()
	seen := map[suspectKey]suspect{}
	defer func() { j.suspects = seen }() // a suspect not seen again is dropped
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
		if err := stampPriorities(ctx, j.db, page); err != nil {
			return res, fmt.Errorf("reindex: %w", err)
		}
		res.Checked += len(page)
		recs, err := j.idx.Records(ctx, page)
		if err != nil {
			return res, fmt.Errorf("reindex: %w", err)
		}
		for i, e := range page {
			if r := recs[i]; r.State == queue.StateCancelled && r.Version >= e.Version {
				res.Tombstoned++
				if err := j.tombstoned(ctx, now, e, r.Version, seen, &res); err != nil {
					return res, err
				}
				continue
			}
			if r := recs[i]; r.State == queue.StatePending && r.Version == e.Version && r.Priority != e.Priority {
				// The template's priority changed (a PATCH) after this
				// reminder was indexed: an add at the same version changes
				// only its class.
				if err := j.idx.Add(ctx, e); err != nil {
					return res, fmt.Errorf("reindex: %w", err)
				}
				res.Reclassed++
				continue
			}
			if recs[i].State != 0 {
				continue
			}
			err := j.idx.Add(ctx, e)
			if errors.Is(err, queue.ErrUserFull) {
				// The service cancels such a row; one left pending must not stop the run.
				j.cfg.Logger.Warn("pending reminder refused by its queue: the user holds too many", "user_id", e.UserID, "template_id", e.TemplateID)
				continue
			}
			if err != nil {
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

// tombstoned handles pending row e under a tombstone at version tomb: the
// first sighting is noted; one Grace later, still the same, the row's
// version moves above the tombstone and the reminder is indexed there.
func (j *Job) tombstoned(ctx context.Context, now time.Time, e queue.Entry, tomb int64, seen map[suspectKey]suspect, res *Result) error {
	k := suspectKey{e.UserID, e.TemplateID}
	s, ok := j.suspects[k]
	if !ok || s.row != e.Version || s.tomb != tomb {
		seen[k] = suspect{row: e.Version, tomb: tomb, since: now}
		return nil
	}
	if now.Sub(s.since) < j.cfg.Grace {
		seen[k] = s
		return nil
	}
	v := tomb + 1
	r, err := j.db.ExecContext(ctx, `UPDATE subscriptions SET version = ?, updated_at = ?
		WHERE user_id = ? AND template_id = ? AND version = ? AND status = 'pending'`,
		v, now.UTC().Truncate(time.Millisecond), e.UserID, e.TemplateID, e.Version)
	if err != nil {
		return fmt.Errorf("reindex: revive user %d template %d: %w", e.UserID, e.TemplateID, err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return fmt.Errorf("reindex: revive user %d template %d: %w", e.UserID, e.TemplateID, err)
	} else if n != 1 {
		return nil // changed meanwhile: a DELETE or PUT went on
	}
	e.Version = v
	if err := j.idx.Add(ctx, e); err != nil {
		// The row is above the tombstone now: the next run indexes it.
		return fmt.Errorf("reindex: %w", err)
	}
	res.Revived++
	j.cfg.Logger.Warn("re-indexed a pending reminder over a newer tombstone (a DELETE whose MySQL write failed)",
		"user_id", e.UserID, "template_id", e.TemplateID, "version", v, "tombstone_version", tomb)
	return nil
}
