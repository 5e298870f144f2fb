package subscription

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"couponpush/internal/finish"
	"couponpush/internal/sqlretry"
	"couponpush/queue"
	"couponpush/template"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound means the user has no subscription to the template.
	ErrNotFound = errors.New("subscription: not found")
	// ErrTooLate means the reminder's push time has already passed.
	ErrTooLate = errors.New("subscription: push time has passed")
	// ErrAlreadySent means the reminder is being published or was sent, so
	// it can no longer be cancelled.
	ErrAlreadySent = errors.New("subscription: reminder already sent")
	// ErrIndex marks a failure of the schedule index (Redis). The MySQL row
	// is written; retrying the same call repairs the index.
	ErrIndex = errors.New("subscription: schedule index failed")
	// ErrTooManyReminders means the user holds as many reminders as its
	// queue allows (queue.Options.MaxRemindersPerUser); the subscription
	// was not made (a row written for it is cancelled again).
	ErrTooManyReminders = errors.New("subscription: too many reminders for this user")
	// ErrTemplateChanged means the template's grab_start changed while
	// subscribing; the caller may retry.
	ErrTemplateChanged = errors.New("subscription: template changed while subscribing; retry")
)

// Status is a subscription's state.
type Status string

// The statuses.
const (
	StatusPending   Status = "pending"   // waiting for its push time
	StatusSent      Status = "sent"      // pushed to the message center
	StatusCancelled Status = "cancelled" // cancelled by the user before its push
)

// Subscription is one user's reminder for one template.
type Subscription struct {
	UserID     int64
	TemplateID int64
	PushAt     time.Time // UTC, millisecond precision
	Status     Status
	Version    int64     // bumped by every change of the row
	PushID     string    // set once sent
	SentAt     time.Time // zero unless sent
	CreatedAt  time.Time

	// priority is the template's, for indexing: set where the template was
	// read (subscribe); not stored in MySQL, so the index is told the
	// template's current priority whenever a PUT (re)indexes the row.
	priority queue.Priority
}

func (s Subscription) entry() queue.Entry {
	return queue.Entry{UserID: s.UserID, TemplateID: s.TemplateID, PushAt: s.PushAt, Version: s.Version, Priority: s.priority}
}

// queuePriority is a template's priority as the index orders it (normal
// for one this version does not know).
func queuePriority(p template.Priority) queue.Priority {
	qp, _ := queue.ParsePriority(string(p))
	return qp
}

// Sent reports one reminder published to the message center.
type Sent struct {
	UserID     int64
	TemplateID int64
	PushID     string // 1-64 characters
	SentAt     time.Time
}

// Index is the Redis schedule index (implemented in queue/).
type Index interface {
	// Add indexes e. Idempotent: if the index holds this (user, template)
	// at an equal or newer version, nothing changes.
	Add(ctx context.Context, e queue.Entry) error
	// Cancel writes a cancel at e.Version. It returns queue.ErrInFlight if
	// the reminder was already taken from its queue (being published or
	// published).
	Cancel(ctx context.Context, e queue.Entry) error
}

// Records is optional on an Index (*queue.Router has it): with it, a PUT
// that finds its row pending reads what the index holds, and repairs a
// tombstone newer than the row (left by a DELETE whose MySQL write failed
// after its index write) by re-indexing above it.
type Records interface {
	Records(ctx context.Context, entries []queue.Entry) ([]queue.RecordEntry, error)
}

// Templates reads coupon templates (template.Cache is one).
type Templates interface {
	Get(ctx context.Context, id int64) (template.Template, error)
}

// invalidator is implemented by template caches that can drop an entry.
type invalidator interface{ Invalidate(id int64) }

// Defaults and limits.
const (
	// DefaultLead is the lead of a Config without one.
	DefaultLead = 60 * time.Second
	// DefaultMax is the MaxLead of a Config without one.
	DefaultMax = 7 * 24 * time.Hour
	// MarkSentBatch is the most rows one MarkSent statement updates.
	MarkSentBatch = 1000
	// maxAttempts bounds compare-and-set retries under concurrent changes,
	// and runs of a statement that was a deadlock victim.
	maxAttempts = 12
	pushIDMax   = 64
)

// Config configures a Service. Zero values mean defaults.
type Config struct {
	// DefaultLead is how long before grab_start a reminder is pushed when
	// the subscriber names no lead; default DefaultLead (60 s).
	DefaultLead time.Duration
	// MaxLead is the longest lead a subscriber may ask for; default
	// DefaultMax (7 days).
	MaxLead time.Duration
	// Now is the clock that decides "too late"; default time.Now.
	Now func() time.Time
	// Logger receives debug notes on retried races; nil discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.DefaultLead == 0 {
		c.DefaultLead = DefaultLead
	}
	if c.MaxLead == 0 {
		c.MaxLead = DefaultMax
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
	if c.DefaultLead < 0 || c.MaxLead < 0 {
		errs = append(errs, errors.New("subscription: config: leads must be positive"))
	}
	if c.DefaultLead > c.MaxLead {
		errs = append(errs, fmt.Errorf("subscription: config: DefaultLead %v exceeds MaxLead %v", c.DefaultLead, c.MaxLead))
	}
	return errors.Join(errs...)
}

// ValidationError is invalid input; callers turn it into a 400.
type ValidationError struct {
	Field   string // the input's name, such as "user_id" or "lead_seconds"
	Message string
}

// Error names the field and what is wrong.
func (e *ValidationError) Error() string {
	return "subscription: invalid " + e.Field + ": " + e.Message
}

// Service is the reminder subscription service. Safe for concurrent use.
type Service struct {
	db        *sql.DB
	templates Templates
	idx       Index
	cfg       Config
	log       *slog.Logger

	mu    sync.Mutex
	stmts map[string]*sql.Stmt

	final template.FinalStarts // grab_starts known final: no checked insert, no confirm

	inserts *inserter       // group commit of new subscriptions (hot path)
	retry   sqlretry.Policy // of exec: retryDeadlock, logged

	// finish runs the writes that complete after the caller has gone: a
	// cancel's index and MySQL writes, a reminder's indexing after its row.
	finish finish.Group

	afterIndexCancel func() // test hook: between a cancel's index and MySQL writes
}

// NewService returns a service over db (table subscriptions, see migrate/),
// reading templates from t and indexing reminders in idx, or the problems
// of its arguments. Call Close to free its prepared statements.
func NewService(db *sql.DB, t Templates, idx Index, cfg Config) (*Service, error) {
	cfg = cfg.WithDefaults()
	errs := []error{cfg.Validate()}
	if db == nil {
		errs = append(errs, errors.New("subscription: db is required"))
	}
	if t == nil {
		errs = append(errs, errors.New("subscription: templates are required"))
	}
	if idx == nil {
		errs = append(errs, errors.New("subscription: index is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Service{db: db, templates: t, idx: idx, cfg: cfg, log: cfg.Logger,
		stmts: map[string]*sql.Stmt{}, inserts: newInserter(db, retryDeadlock)}
	s.retry = retryDeadlock
	s.retry.OnRetry = func(ctx context.Context, attempt int, _ error) {
		s.log.DebugContext(ctx, "statement was a deadlock victim; retrying", "attempt", attempt)
	}
	return s, nil
}

// retryDeadlock runs a statement again when InnoDB picked it as a deadlock
// victim: it was rolled back whole. A lock wait timeout is not retried: the
// wait alone took innodb_lock_wait_timeout (50 s by default), longer than
// any request waits.
var retryDeadlock = sqlretry.Policy{On: []uint16{sqlretry.ErLockDeadlock}, Attempts: maxAttempts}

// Close waits for writes finishing after their callers went away, then
// frees the prepared statements. The service must not be used after.
func (s *Service) Close() error {
	s.finish.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for q, st := range s.stmts {
		errs = append(errs, st.Close())
		delete(s.stmts, q)
	}
	return errors.Join(errs...)
}

// stmt returns a prepared statement for a fixed query, preparing it once:
// a prepared statement costs one round trip per execution, where an
// unprepared query with arguments costs a prepare, an execute and a close.
// The lock is never held across the prepare: a prepare stuck on a MySQL
// that stopped answering (under a finishing step's longer bound) must not
// hold every other request past its own deadline. Two first callers may
// both prepare; the second one's statement is closed.
func (s *Service) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	s.mu.Lock()
	st, ok := s.stmts[query]
	s.mu.Unlock()
	if ok {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("subscription: prepare statement: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if first, ok := s.stmts[query]; ok {
		_ = st.Close()
		return first, nil
	}
	s.stmts[query] = st
	return st, nil
}

// exec runs one autocommit statement. InnoDB may pick it as a deadlock
// victim (racing upserts of one key can do that); it was rolled back whole,
// so it is run again, a bounded number of times.
func (s *Service) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := s.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return sqlretry.Do(ctx, s.retry, func() (sql.Result, error) { return st.ExecContext(ctx, args...) })
}

func checkIDs(userID, templateID int64) error {
	if userID <= 0 {
		return &ValidationError{Field: "user_id", Message: "must be a positive integer"}
	}
	if templateID <= 0 {
		return &ValidationError{Field: "template_id", Message: "must be a positive integer"}
	}
	return nil
}

func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

const (
	// qInsertChecked (the first insert per template; later ones go through
	// the group-committing inserter) inserts only while the template's grab_start is the
	// one push_at came from; the shared lock makes a concurrent
	// template.Store.Update wait or be seen.
	qInsertChecked = `INSERT INTO subscriptions (user_id, template_id, push_at, status, version, created_at, updated_at)
SELECT ?, t.id, ?, 'pending', 1, ?, ?
FROM templates t WHERE t.id = ? AND t.grab_start = ?
LOCK IN SHARE MODE
ON DUPLICATE KEY UPDATE user_id = user_id`
	qGrabStart = `SELECT grab_start FROM templates WHERE id = ?`
	qGet       = `SELECT push_at, status, version, push_id, sent_at, created_at
FROM subscriptions WHERE user_id = ? AND template_id = ?`
	qRepoint = `UPDATE subscriptions SET push_at = ?, version = version + 1, updated_at = ?
WHERE user_id = ? AND template_id = ? AND version = ? AND status = 'pending'`
	qReactivate = `UPDATE subscriptions SET status = 'pending', push_at = ?, version = version + 1, updated_at = ?
WHERE user_id = ? AND template_id = ? AND version = ? AND status = 'cancelled'`
	qCancel = `UPDATE subscriptions SET status = 'cancelled', version = version + 1, updated_at = ?
WHERE user_id = ? AND template_id = ? AND version = ? AND status = 'pending'`
	// qRevive moves a pending row's version above a tombstone the index
	// holds for it, so the reminder can be indexed again.
	qRevive = `UPDATE subscriptions SET version = ?, updated_at = ?
WHERE user_id = ? AND template_id = ? AND version = ? AND status = 'pending'`
	qList = `SELECT template_id, push_at, status, version, push_id, sent_at, created_at
FROM subscriptions WHERE user_id = ? AND template_id > ? ORDER BY template_id LIMIT ?`
)

// Subscribe subscribes userID to templateID's reminder, pushed lead before
// the template's grab_start (nil lead = Config.DefaultLead). It returns the
// subscription and whether it was created (or a cancelled one reactivated).
//
// An existing sent subscription is returned as is. A pending one with the
// same push time is re-indexed without a MySQL write; with another push
// time it is moved (ErrTooLate if that time has passed). A cancelled one is
// reactivated unless its new push time has passed. A new one is refused
// with ErrTooLate, writing nothing, when its push time has passed.
// Templates that do not exist give template.ErrNotFound. If indexing
// fails after the MySQL write, the error wraps ErrIndex: the row stays and
// a retry repairs the index.
func (s *Service) Subscribe(ctx context.Context, userID, templateID int64, lead *time.Duration) (sub Subscription, created bool, err error) {
	if err := checkIDs(userID, templateID); err != nil {
		return Subscription{}, false, err
	}
	l := s.cfg.DefaultLead
	if lead != nil {
		l = *lead
		if l <= 0 || l > s.cfg.MaxLead {
			return Subscription{}, false, &ValidationError{Field: "lead_seconds",
				Message: fmt.Sprintf("must be more than 0 and at most %d seconds", int64(s.cfg.MaxLead/time.Second))}
		}
	}
	for attempt := 0; ; attempt++ {
		t, err := s.templates.Get(ctx, templateID)
		if err != nil {
			return Subscription{}, false, fmt.Errorf("subscription: read template %d: %w", templateID, err)
		}
		pushAt := ms(t.GrabStart.Add(-l))
		sub, created, err = s.subscribe(ctx, userID, t, pushAt)
		if !errors.Is(err, ErrTemplateChanged) || attempt > 0 {
			return sub, created, err
		}
		// The cached template is stale: read it again, once.
		inv, ok := s.templates.(invalidator)
		if !ok {
			return sub, created, err
		}
		inv.Invalidate(templateID)
	}
}

func (s *Service) subscribe(ctx context.Context, userID int64, t template.Template, pushAt time.Time) (Subscription, bool, error) {
	now := s.cfg.Now()
	if !pushAt.After(now) {
		// Only an existing row can answer now; nothing new is written.
		cur, err := s.get(ctx, userID, t.ID)
		if errors.Is(err, ErrNotFound) {
			if err := s.confirm(ctx, t); err != nil {
				return Subscription{}, false, err
			}
			return Subscription{}, false, ErrTooLate
		}
		if err != nil {
			return Subscription{}, false, err
		}
		return s.resubscribe(ctx, t, cur, pushAt)
	}
	stamp := ms(now)
	final := s.final.Known(t)
	var inserted bool
	if final {
		var err error
		if inserted, err = s.insert(ctx, userID, t.ID, pushAt, stamp); err != nil {
			return Subscription{}, false, fmt.Errorf("subscription: insert user %d template %d: %w", userID, t.ID, err)
		}
	} else {
		res, err := s.exec(ctx, qInsertChecked, userID, pushAt, stamp, stamp, t.ID, t.GrabStart)
		if err != nil {
			return Subscription{}, false, fmt.Errorf("subscription: insert user %d template %d: %w", userID, t.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return Subscription{}, false, fmt.Errorf("subscription: insert user %d template %d: %w", userID, t.ID, err)
		}
		inserted = n == 1
	}
	if inserted {
		if !final {
			s.final.Add(t) // our row is committed: grab_start can no longer change
		}
		sub := Subscription{UserID: userID, TemplateID: t.ID, PushAt: pushAt, Status: StatusPending, Version: 1, CreatedAt: stamp,
			priority: queuePriority(t.Priority)}
		return sub, true, s.add(ctx, sub)
	}
	// A duplicate, or (checked insert) the template's grab_start no longer
	// matches.
	cur, err := s.get(ctx, userID, t.ID)
	if errors.Is(err, ErrNotFound) {
		return Subscription{}, false, fmt.Errorf("subscribe user %d template %d: %w", userID, t.ID, ErrTemplateChanged)
	}
	if err != nil {
		return Subscription{}, false, err
	}
	return s.resubscribe(ctx, t, cur, pushAt)
}

// insert hands a new row to the group-committing inserter as a finishing
// step. A caller that becomes a flush's leader (internal/batch) runs the
// flush to its end, bounded by the batch's timeout and not by its own
// context: a hung MySQL would hold the request past its deadline. From a
// step, the caller is answered by its deadline while the flush goes on;
// a row written after that is found and indexed by a retried PUT.
func (s *Service) insert(ctx context.Context, userID, templateID int64, pushAt, stamp time.Time) (bool, error) {
	var created bool
	err := s.finish.Do(ctx, func(ctx context.Context) error {
		var err error
		created, err = s.inserts.insert(ctx, userID, templateID, pushAt, stamp)
		return err
	})
	if err != nil {
		return false, err // created may still be written by the step
	}
	return created, nil
}

// confirm checks t's grab_start against MySQL unless it is known final,
// so a push time computed from a stale cached template is never written or
// acted on.
func (s *Service) confirm(ctx context.Context, t template.Template) error {
	if s.final.Known(t) {
		return nil
	}
	return s.checkGrabStart(ctx, t)
}

// confirmFinal is confirm for a t that has a committed subscription row,
// which makes a confirmed grab_start final.
func (s *Service) confirmFinal(ctx context.Context, t template.Template) error {
	if s.final.Known(t) {
		return nil
	}
	if err := s.checkGrabStart(ctx, t); err != nil {
		return err
	}
	s.final.Add(t)
	return nil
}

// checkGrabStart reads t's grab_start from MySQL: ErrTemplateChanged if it
// is not t's.
func (s *Service) checkGrabStart(ctx context.Context, t template.Template) error {
	st, err := s.stmt(ctx, qGrabStart)
	if err != nil {
		return err
	}
	var g time.Time
	err = st.QueryRowContext(ctx, t.ID).Scan(&g)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("subscription: confirm template %d: %w", t.ID, template.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("subscription: confirm template %d: %w", t.ID, err)
	}
	if !g.Equal(t.GrabStart) {
		return fmt.Errorf("confirm template %d: %w", t.ID, ErrTemplateChanged)
	}
	return nil
}

// resubscribe handles a subscription whose row exists, retrying when a
// concurrent change wins the compare-and-set.
func (s *Service) resubscribe(ctx context.Context, t template.Template, cur Subscription, pushAt time.Time) (Subscription, bool, error) {
	if cur.Status == StatusSent {
		return cur, false, nil
	}
	if err := s.confirmFinal(ctx, t); err != nil {
		return Subscription{}, false, err
	}
	cur.priority = queuePriority(t.Priority)
	for attempt := 1; ; attempt++ {
		var (
			query   string
			created bool
		)
		switch cur.Status {
		case StatusSent:
			return cur, false, nil
		case StatusPending:
			if cur.PushAt.Equal(pushAt) {
				next, err := s.reindex(ctx, cur)
				if !errors.Is(err, errChanged) {
					return next, false, err
				}
				break // the row changed under the repair: read it again
			}
			query = qRepoint
		case StatusCancelled:
			query, created = qReactivate, true
		default:
			return Subscription{}, false, fmt.Errorf("subscription: user %d template %d has unknown status %q", cur.UserID, cur.TemplateID, cur.Status)
		}
		if query != "" {
			now := s.cfg.Now()
			if !pushAt.After(now) {
				return Subscription{}, false, ErrTooLate
			}
			res, err := s.exec(ctx, query, pushAt, ms(now), cur.UserID, cur.TemplateID, cur.Version)
			if err != nil {
				return Subscription{}, false, fmt.Errorf("subscription: update user %d template %d: %w", cur.UserID, cur.TemplateID, err)
			}
			if ok, err := oneRow(res); err != nil {
				return Subscription{}, false, fmt.Errorf("subscription: update user %d template %d: %w", cur.UserID, cur.TemplateID, err)
			} else if ok {
				cur.Status, cur.PushAt, cur.Version = StatusPending, pushAt, cur.Version+1
				return cur, created, s.add(ctx, cur)
			}
		}
		if attempt == maxAttempts {
			return Subscription{}, false, fmt.Errorf("subscription: user %d template %d changed concurrently %d times; giving up", cur.UserID, cur.TemplateID, attempt)
		}
		s.log.DebugContext(ctx, "subscription changed concurrently; retrying",
			"user_id", cur.UserID, "template_id", cur.TemplateID, "attempt", attempt)
		if err := pause(ctx, attempt); err != nil {
			return Subscription{}, false, err
		}
		var err error
		if cur, err = s.get(ctx, cur.UserID, cur.TemplateID); err != nil {
			return Subscription{}, false, err
		}
		cur.priority = queuePriority(t.Priority)
	}
}

func oneRow(res sql.Result) (bool, error) {
	n, err := res.RowsAffected()
	return n == 1, err
}

// add indexes sub. It follows a MySQL write, so it completes (bounded)
// when the caller goes away meanwhile: a row left unindexed waits for a
// retry or the reindex job.
func (s *Service) add(ctx context.Context, sub Subscription) error {
	err := s.finish.Do(ctx, func(ctx context.Context) error { return s.idx.Add(ctx, sub.entry()) })
	if errors.Is(err, queue.ErrUserFull) {
		return s.refuse(ctx, sub)
	}
	if err != nil {
		return fmt.Errorf("subscription: index user %d template %d version %d: %w: %w",
			sub.UserID, sub.TemplateID, sub.Version, ErrIndex, err)
	}
	return nil
}

// errChanged: a compare-and-set on a row's version lost to a concurrent
// change; the caller reads the row again.
var errChanged = errors.New("subscription: changed concurrently")

// reindex (re)indexes the pending row cur. If the index holds a tombstone
// at cur's version or newer (a DELETE wrote it, then its MySQL write
// failed or has not happened yet), Add alone changes nothing and the
// reminder would never be pushed: the row's version is moved above the
// tombstone and the reminder indexed at it. A DELETE still in progress
// then loses its compare-and-set and tries again, so it still wins.
func (s *Service) reindex(ctx context.Context, cur Subscription) (Subscription, error) {
	if err := s.add(ctx, cur); err != nil {
		return Subscription{}, err
	}
	rr, ok := s.idx.(Records)
	if !ok {
		return cur, nil
	}
	recs, err := rr.Records(ctx, []queue.Entry{cur.entry()})
	if err != nil {
		return Subscription{}, fmt.Errorf("subscription: read index user %d template %d: %w: %w", cur.UserID, cur.TemplateID, ErrIndex, err)
	}
	tomb := recs[0]
	if tomb.State != queue.StateCancelled || tomb.Version < cur.Version {
		return cur, nil
	}
	next, err := s.revive(ctx, cur, tomb.Version)
	if err != nil {
		return Subscription{}, err
	}
	s.log.WarnContext(ctx, "re-indexed a pending reminder over a newer tombstone",
		"user_id", cur.UserID, "template_id", cur.TemplateID, "version", next.Version, "tombstone_version", tomb.Version)
	return next, nil
}

// revive moves pending row cur to a version above tombVersion, the
// version of a tombstone the index holds for it, and indexes it there.
// It returns errChanged when the row is no longer pending at cur.Version.
// (The reindex job does the same for rows it finds in that state.)
func (s *Service) revive(ctx context.Context, cur Subscription, tombVersion int64) (Subscription, error) {
	v := tombVersion + 1
	res, err := s.exec(ctx, qRevive, v, ms(s.cfg.Now()), cur.UserID, cur.TemplateID, cur.Version)
	if err != nil {
		return Subscription{}, fmt.Errorf("subscription: revive user %d template %d: %w", cur.UserID, cur.TemplateID, err)
	}
	if ok, err := oneRow(res); err != nil {
		return Subscription{}, fmt.Errorf("subscription: revive user %d template %d: %w", cur.UserID, cur.TemplateID, err)
	} else if !ok {
		return Subscription{}, fmt.Errorf("revive user %d template %d: %w", cur.UserID, cur.TemplateID, errChanged)
	}
	cur.Version = v
	return cur, s.add(ctx, cur)
}

// refuse undoes the pending row of sub, which its queue refused because the
// user holds too many reminders: it is cancelled at its version, so the
// safety net does not try to index it again (a concurrent newer write
// wins and decides for itself).
func (s *Service) refuse(ctx context.Context, sub Subscription) error {
	if _, err := s.exec(ctx, qCancel, ms(s.cfg.Now()), sub.UserID, sub.TemplateID, sub.Version); err != nil {
		return fmt.Errorf("subscription: user %d template %d: %w; cancelling its row: %w: %w",
			sub.UserID, sub.TemplateID, ErrTooManyReminders, ErrIndex, err)
	}
	return fmt.Errorf("subscription: user %d template %d: %w", sub.UserID, sub.TemplateID, ErrTooManyReminders)
}

// Cancel cancels userID's reminder for templateID. Cancelling a cancelled
// subscription succeeds; ErrNotFound if there is none; ErrAlreadySent if it
// was sent or is being published (the row then stays as it is). The index
// is told first, so after a nil return the reminder is never pushed, and
// so a reminder taken meanwhile is never marked cancelled.
//
// Once the index write has started, it and the MySQL write complete
// (bounded) even when the caller goes away. If the MySQL write fails after
// the index write, the index holds a tombstone newer than the pending row:
// a PUT (see reindex) or the reindex job re-indexes the reminder above it,
// and a retried DELETE cancels it.
func (s *Service) Cancel(ctx context.Context, userID, templateID int64) error {
	if err := checkIDs(userID, templateID); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		cur, err := s.get(ctx, userID, templateID)
		if err != nil {
			return err
		}
		switch cur.Status {
		case StatusCancelled:
			return nil
		case StatusSent:
			return ErrAlreadySent
		}
		err = s.finish.Do(ctx, func(ctx context.Context) error { return s.cancel(ctx, cur) })
		if !errors.Is(err, errChanged) {
			return err
		}
		if attempt == maxAttempts {
			return fmt.Errorf("subscription: cancel user %d template %d: changed concurrently %d times; giving up", userID, templateID, attempt)
		}
		s.log.DebugContext(ctx, "subscription changed concurrently; retrying cancel",
			"user_id", userID, "template_id", templateID, "attempt", attempt)
		if err := pause(ctx, attempt); err != nil {
			return err
		}
	}
}

// pause waits before a lost compare-and-set is tried again: at random, up
// to attempt milliseconds, so writers contending for one row stop meeting
// in lockstep (a PUT that repairs a newer tombstone makes a DELETE in
// progress try again, and the other way round). It returns ctx's error
// when ctx ends first.
func pause(ctx context.Context, attempt int) error {
	t := time.NewTimer(rand.N(time.Duration(attempt) * time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("subscription: retrying a concurrent change: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// cancel writes the tombstone of pending row cur, then the row's cancel;
// errChanged when the row changed since it was read.
func (s *Service) cancel(ctx context.Context, cur Subscription) error {
	userID, templateID := cur.UserID, cur.TemplateID
	e := cur.entry()
	e.Version++
	if err := s.idx.Cancel(ctx, e); errors.Is(err, queue.ErrInFlight) {
		return fmt.Errorf("cancel user %d template %d: %w", userID, templateID, ErrAlreadySent)
	} else if err != nil {
		return fmt.Errorf("subscription: cancel user %d template %d in the index: %w: %w", userID, templateID, ErrIndex, err)
	}
	if s.afterIndexCancel != nil {
		s.afterIndexCancel()
	}
	res, err := s.exec(ctx, qCancel, ms(s.cfg.Now()), userID, templateID, cur.Version)
	if err != nil {
		return fmt.Errorf("subscription: cancel user %d template %d: %w", userID, templateID, err)
	}
	if ok, err := oneRow(res); err != nil {
		return fmt.Errorf("subscription: cancel user %d template %d: %w", userID, templateID, err)
	} else if !ok {
		return errChanged
	}
	return nil
}

func scanSub(r interface{ Scan(...any) error }, sub *Subscription) error {
	var (
		status string
		pushID sql.NullString
		sentAt sql.NullTime
	)
	if err := r.Scan(&sub.PushAt, &status, &sub.Version, &pushID, &sentAt, &sub.CreatedAt); err != nil {
		return err
	}
	sub.Status, sub.PushID = Status(status), pushID.String
	sub.PushAt, sub.CreatedAt = sub.PushAt.UTC(), sub.CreatedAt.UTC()
	if sentAt.Valid {
		sub.SentAt = sentAt.Time.UTC()
	}
	return nil
}

// get reads one subscription; ErrNotFound if there is none.
func (s *Service) get(ctx context.Context, userID, templateID int64) (Subscription, error) {
	st, err := s.stmt(ctx, qGet)
	if err != nil {
		return Subscription{}, err
	}
	sub := Subscription{UserID: userID, TemplateID: templateID}
	err = scanSub(st.QueryRowContext(ctx, userID, templateID), &sub)
	if errors.Is(err, sql.ErrNoRows) {
		return Subscription{}, fmt.Errorf("user %d template %d: %w", userID, templateID, ErrNotFound)
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("subscription: read user %d template %d: %w", userID, templateID, err)
	}
	return sub, nil
}

// MaxListLimit is the most subscriptions one List call returns (and the
// default page size).
const MaxListLimit = 1000

// Page selects a part of a user's subscriptions, which List returns in
// template id order: those with a template id above After (0: from the
// first), at most Limit of them (0: MaxListLimit). The next page starts
// after the last template id of this one.
type Page struct {
	After int64
	Limit int
}

// List returns a page of userID's subscriptions, in any status, by
// template id.
func (s *Service) List(ctx context.Context, userID int64, page Page) ([]Subscription, error) {
	if userID <= 0 {
		return nil, &ValidationError{Field: "user_id", Message: "must be a positive integer"}
	}
	if page.After < 0 {
		return nil, &ValidationError{Field: "after", Message: "must be a template id (0 or more)"}
	}
	if page.Limit == 0 {
		page.Limit = MaxListLimit
	}
	if page.Limit < 0 || page.Limit > MaxListLimit {
		return nil, &ValidationError{Field: "limit", Message: fmt.Sprintf("must be 1 to %d", MaxListLimit)}
	}
	st, err := s.stmt(ctx, qList)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, userID, page.After, page.Limit)
	if err != nil {
		return nil, fmt.Errorf("subscription: list user %d: %w", userID, err)
	}
	defer rows.Close()
	out := []Subscription{}
	for rows.Next() {
		sub := Subscription{UserID: userID}
		var (
			status string
			pushID sql.NullString
			sentAt sql.NullTime
		)
		if err := rows.Scan(&sub.TemplateID, &sub.PushAt, &status, &sub.Version, &pushID, &sentAt, &sub.CreatedAt); err != nil {
			return nil, fmt.Errorf("subscription: scan user %d: %w", userID, err)
		}
		sub.Status, sub.PushID = Status(status), pushID.String
		sub.PushAt, sub.CreatedAt = sub.PushAt.UTC(), sub.CreatedAt.UTC()
		if sentAt.Valid {
			sub.SentAt = sentAt.Time.UTC()
		}
		out = append(out, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("subscription: list user %d: %w", userID, err)
	}
	return out, nil
}

// MarkSent records published reminders: rows still pending become sent
// with their push id and time; rows in any other status are left alone.
// One UPDATE per MarkSentBatch rows. Invalid input writes nothing.
func (s *Service) MarkSent(ctx context.Context, sent []Sent) error {
	for i, m := range sent {
		switch {
		case m.UserID <= 0 || m.TemplateID <= 0:
			return &ValidationError{Field: "sent", Message: fmt.Sprintf("item %d has a non-positive id", i)}
		case m.PushID == "" || len(m.PushID) > pushIDMax:
			return &ValidationError{Field: "push_id", Message: fmt.Sprintf("item %d: must be 1-%d bytes", i, pushIDMax)}
		case m.SentAt.IsZero():
			return &ValidationError{Field: "sent_at", Message: fmt.Sprintf("item %d: is required", i)}
		}
	}
	for start := 0; start < len(sent); start += MarkSentBatch {
		batch := sent[start:min(start+MarkSentBatch, len(sent))]
		query, args := markSentQuery(batch, ms(s.cfg.Now()))
		if _, err := s.db.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("subscription: mark %d reminders sent (from item %d): %w", len(batch), start, err)
		}
	}
	return nil
}

// markSentQuery builds one UPDATE for a batch. FORCE INDEX keeps it a range
// read of the unique key, so it locks only the rows it names.
func markSentQuery(batch []Sent, now time.Time) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, len(batch)*8+1)
	b.WriteString("UPDATE subscriptions FORCE INDEX (uq_subscriptions_user_template)\nSET status = 'sent', version = version + 1, updated_at = ?,\npush_id = CASE")
	args = append(args, now)
	for _, m := range batch {
		b.WriteString(" WHEN user_id = ? AND template_id = ? THEN ?")
		args = append(args, m.UserID, m.TemplateID, m.PushID)
	}
	b.WriteString(" END,\nsent_at = CASE")
	for _, m := range batch {
		b.WriteString(" WHEN user_id = ? AND template_id = ? THEN ?")
		args = append(args, m.UserID, m.TemplateID, ms(m.SentAt))
	}
	b.WriteString(" END\nWHERE status = 'pending' AND (user_id, template_id) IN (")
	for i, m := range batch {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("(?,?)")
		args = append(args, m.UserID, m.TemplateID)
	}
	b.WriteString(")")
	return b.String(), args
}
