package coupon

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
	"unicode"
	"unicode/utf8"

	"couponpush/internal/sqlretry"
	"couponpush/template"
)

// Sentinel errors of claims and coupons, which the API maps to its codes.
var (
	// ErrSoldOut: the template has no stock left.
	ErrSoldOut = errors.New("coupon: sold out")
	// ErrLimitReached: the user holds the template's per-user limit.
	ErrLimitReached = errors.New("coupon: per-user limit reached")
	// ErrNotStarted: the template's grab_start has not come.
	ErrNotStarted = errors.New("coupon: claiming has not started")
	// ErrEnded: the template's grab_end has passed.
	ErrEnded = errors.New("coupon: claiming has ended")
	// ErrRequestConflict: the request_id was used by another user.
	ErrRequestConflict = errors.New("coupon: request_id used by another user")
	// ErrClaimInProgress: an earlier attempt with this request_id has no
	// settled outcome yet; retry the same request_id later.
	ErrClaimInProgress = errors.New("coupon: a claim with this request_id is in progress")
	// ErrOutcomeUnknown: the claim's MySQL write may or may not have
	// committed; reconcile settles it and a retry with the same request_id
	// returns the coupon if it did.
	ErrOutcomeUnknown = errors.New("coupon: claim outcome unknown; retry with the same request_id")
	// ErrStockUnavailable: the template's Redis stock is missing or the
	// claim could not be finished in time; nothing was issued.
	ErrStockUnavailable = errors.New("coupon: stock unavailable; retry")
	// ErrCouponNotFound: no such coupon, or it is not that user's.
	ErrCouponNotFound = errors.New("coupon: coupon not found")
	// ErrExpired: the coupon's expires_at has passed.
	ErrExpired = errors.New("coupon: coupon expired")
	// ErrAlreadyUsed: the coupon was redeemed.
	ErrAlreadyUsed = errors.New("coupon: coupon already used")
	// ErrLocked: the coupon is locked for another order.
	ErrLocked = errors.New("coupon: coupon locked for another order")
)

// Status is a coupon's state.
type Status string

// Coupon states. A coupon whose expires_at has passed reads as Expired
// whatever its stored state (unless Used), before the sweep writes it.
const (
	Unused  Status = "unused"
	Locked  Status = "locked"
	Used    Status = "used"
	Expired Status = "expired"
)

// ParseStatus returns the status named s, or false.
func ParseStatus(s string) (Status, bool) {
	switch st := Status(s); st {
	case Unused, Locked, Used, Expired:
		return st, true
	}
	return "", false
}

// MaxClientIDLen bounds request_id and order_id, in characters.
const MaxClientIDLen = 64

// Coupon is one issued coupon, as read (Status is the effective one).
type Coupon struct {
	ID         int64
	TemplateID int64
	UserID     int64
	RequestID  string
	Status     Status
	OrderID    string
	ExpiresAt  time.Time
	ClaimedAt  time.Time
	UpdatedAt  time.Time
	UsedAt     time.Time
}

const couponColumns = `id, template_id, user_id, request_id, status, order_id, expires_at, claimed_at, updated_at, used_at`

func scanCoupon(r rowScanner, now time.Time) (Coupon, error) {
	var (
		c      Coupon
		st     string
		order  sql.NullString
		usedAt sql.NullTime
	)
	if err := r.Scan(&c.ID, &c.TemplateID, &c.UserID, &c.RequestID, &st, &order, &c.ExpiresAt, &c.ClaimedAt, &c.UpdatedAt, &usedAt); err != nil {
		return Coupon{}, err
	}
	c.Status, c.OrderID = Status(st), order.String
	c.ExpiresAt, c.ClaimedAt, c.UpdatedAt = c.ExpiresAt.UTC(), c.ClaimedAt.UTC(), c.UpdatedAt.UTC()
	if usedAt.Valid {
		c.UsedAt = usedAt.Time.UTC()
	}
	if (c.Status == Unused || c.Status == Locked) && !now.Before(c.ExpiresAt) {
		c.Status = Expired
	}
	return c, nil
}

// checkClientID validates a request_id or order_id.
func checkClientID(field, s string) error {
	if !ValidClientID(s) {
		return &template.ValidationError{Fields: []template.FieldError{{Field: field, Message: ClientIDRule}}}
	}
	return nil
}

// ClientIDRule says in words what ValidClientID accepts.
const ClientIDRule = "must be 1 to 64 printable characters (no control, bidi or zero-width characters)"

// ValidClientID reports whether s may be a request_id or order_id: 1 to
// MaxClientIDLen characters of valid UTF-8, each printable (letters,
// marks, numbers, punctuation, symbols or the ASCII space). Control
// characters, format characters (bidi overrides and isolates, zero-width
// spaces and joiners, the BOM) and U+FFFD (what a JSON decoder makes of
// invalid UTF-8) are refused: such ids look the same as others in logs
// and consoles while being different keys.
func ValidClientID(s string) bool {
	n := 0
	for _, r := range s {
		n++
		if n > MaxClientIDLen || r == utf8.RuneError || !unicode.IsPrint(r) {
			return false
		}
	}
	return n >= 1
}

func checkID(field string, id int64) error {
	if id <= 0 {
		return &template.ValidationError{Fields: []template.FieldError{{Field: field, Message: "must be a positive 64-bit integer"}}}
	}
	return nil
}

// Get returns coupon id if it is user's; ErrCouponNotFound otherwise.
func (s *Service) Get(ctx context.Context, user, id int64) (Coupon, error) {
	c, err := s.getCoupon(ctx, s.db, id)
	if err != nil {
		return Coupon{}, err
	}
	if c.UserID != user {
		return Coupon{}, fmt.Errorf("coupon %d of user %d: %w", id, user, ErrCouponNotFound)
	}
	return c, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func (s *Service) getCoupon(ctx context.Context, q querier, id int64) (Coupon, error) {
	c, err := scanCoupon(q.QueryRowContext(ctx, "SELECT "+couponColumns+" FROM coupons WHERE id = ?", id), norm(s.now()))
	if errors.Is(err, sql.ErrNoRows) {
		return Coupon{}, fmt.Errorf("coupon %d: %w", id, ErrCouponNotFound)
	}
	if err != nil {
		return Coupon{}, fmt.Errorf("coupon: read coupon %d: %w", id, err)
	}
	return c, nil
}

// byRequest returns the coupon template's request_id issued, or sql.ErrNoRows.
func (s *Service) byRequest(ctx context.Context, template int64, requestID string) (Coupon, error) {
	c, err := scanCoupon(s.db.QueryRowContext(ctx, "SELECT "+couponColumns+" FROM coupons WHERE template_id = ? AND request_id = ?",
		template, requestID), norm(s.now()))
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Coupon{}, fmt.Errorf("coupon: read claim %q of template %d: %w", requestID, template, err)
	}
	return c, err
}

// Lock locks coupon id of user for order: from unused, or again for the
// same order (a no-op). ErrLocked if another order holds it; ErrExpired,
// ErrAlreadyUsed; ErrCouponNotFound if it is not user's.
func (s *Service) Lock(ctx context.Context, user, id int64, order string) (Coupon, error) {
	if err := errors.Join(checkID("user_id", user), checkClientID("order_id", order)); err != nil {
		return Coupon{}, firstValidation(err)
	}
	now := norm(s.now())
	return s.transition(ctx, update{user: user, id: id, order: order,
		stmt: `UPDATE coupons SET status = 'locked', order_id = ?, updated_at = ?
WHERE id = ? AND user_id = ? AND status = 'unused' AND expires_at > ?`,
		args: []any{order, now, id, user, now},
		explain: func(c Coupon) error {
			switch {
			case c.Status == Locked && c.OrderID == order:
				return nil
			case c.Status == Locked:
				return ErrLocked
			}
			return stateError(c)
		}})
}

// Unlock puts coupon id of user back to unused when it is locked for order
// (the order was cancelled). Unlocking an unused coupon is a no-op;
// ErrLocked if another order holds it; ErrAlreadyUsed once used;
// ErrExpired once expires_at passed, before the sweep as after it.
func (s *Service) Unlock(ctx context.Context, user, id int64, order string) (Coupon, error) {
	if err := errors.Join(checkID("user_id", user), checkClientID("order_id", order)); err != nil {
		return Coupon{}, firstValidation(err)
	}
	now := norm(s.now())
	return s.transition(ctx, update{user: user, id: id, order: order,
		stmt: `UPDATE coupons SET status = 'unused', order_id = NULL, updated_at = ?
WHERE id = ? AND user_id = ? AND status = 'locked' AND order_id = ? AND expires_at > ?`,
		args: []any{now, id, user, order, now},
		explain: func(c Coupon) error {
			switch {
			case c.Status == Unused:
				return nil
			case c.Status == Locked:
				return ErrLocked
			case c.Status == Used:
				return ErrAlreadyUsed
			}
			return ErrExpired // expired and not locked by this order
		}})
}

// Redeem uses coupon id of user for order: from unused, or from locked by
// the same order. The UPDATE's condition includes expires_at > now, so a
// redeem racing expiry (or the sweep) either wins before expiry or fails
// with ErrExpired. ErrAlreadyUsed for a used coupon (a second redeem),
// ErrLocked if another order holds it.
func (s *Service) Redeem(ctx context.Context, user, id int64, order string) (Coupon, error) {
	if err := errors.Join(checkID("user_id", user), checkClientID("order_id", order)); err != nil {
		return Coupon{}, firstValidation(err)
	}
	now := norm(s.now())
	return s.transition(ctx, update{user: user, id: id, order: order,
		stmt: `UPDATE coupons SET status = 'used', order_id = ?, used_at = ?, updated_at = ?
WHERE id = ? AND user_id = ? AND expires_at > ?
  AND (status = 'unused' OR (status = 'locked' AND order_id = ?))`,
		args: []any{order, now, now, id, user, now, order},
		explain: func(c Coupon) error {
			if c.Status == Locked {
				return ErrLocked
			}
			return stateError(c)
		}})
}

func stateError(c Coupon) error {
	switch c.Status {
	case Used:
		return ErrAlreadyUsed
	case Expired:
		return ErrExpired
	case Locked:
		return ErrLocked
	}
	return fmt.Errorf("coupon %d: unexpected state %s", c.ID, c.Status)
}

// update is one conditional UPDATE of coupon id of user for order (Lock,
// Unlock, Redeem).
type update struct {
	user, id int64
	order    string
	stmt     string
	args     []any
	// explain says why no row changed, from the coupon read after (nil:
	// the state is already the wanted one).
	explain func(Coupon) error
}

// transition runs u.stmt; when it changes no row, the coupon is read and
// u.explain says why.
func (s *Service) transition(ctx context.Context, u update) (Coupon, error) {
	user, id, order := u.user, u.id, u.order
	res, err := s.execRetry(ctx, u.stmt, u.args...)
	if err != nil {
		return Coupon{}, fmt.Errorf("coupon: update coupon %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Coupon{}, fmt.Errorf("coupon: update coupon %d: %w", id, err)
	}
	c, err := s.Get(ctx, user, id)
	if err != nil {
		return Coupon{}, err
	}
	if n == 1 {
		return c, nil
	}
	if err := u.explain(c); err != nil {
		return Coupon{}, fmt.Errorf("coupon %d, order %q: %w", id, order, err)
	}
	return c, nil
}

func firstValidation(err error) error {
	var ve *template.ValidationError
	if errors.As(err, &ve) {
		return ve
	}
	return err
}

// MaxList bounds how many coupons one List returns (newest first).
const MaxList = 1000

// List returns user's coupons, newest first, at most MaxList; status ""
// means all. Expired includes unused and locked coupons past expires_at
// that the sweep has not written yet.
func (s *Service) List(ctx context.Context, user int64, status Status) ([]Coupon, error) {
	if err := checkID("user_id", user); err != nil {
		return nil, err
	}
	now := norm(s.now())
	q := "SELECT " + couponColumns + " FROM coupons WHERE user_id = ?"
	args := []any{user}
	switch status {
	case "":
	case Unused, Locked:
		q += " AND status = ? AND expires_at > ?"
		args = append(args, string(status), now)
	case Used:
		q += " AND status = 'used'"
	case Expired:
		q += " AND (status = 'expired' OR (status IN ('unused','locked') AND expires_at <= ?))"
		args = append(args, now)
	default:
		return nil, &template.ValidationError{Fields: []template.FieldError{{Field: "status", Message: "must be unused, locked, used or expired"}}}
	}
	q += " ORDER BY id DESC LIMIT " + fmt.Sprint(MaxList)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("coupon: list coupons of user %d: %w", user, err)
	}
	defer rows.Close()
	out := []Coupon{}
	for rows.Next() {
		c, err := scanCoupon(rows, now)
		if err != nil {
			return nil, fmt.Errorf("coupon: list coupons of user %d: %w", user, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("coupon: list coupons of user %d: %w", user, err)
	}
	return out, nil
}

// Bounds of SweepExpired's batch.
const (
	// DefaultSweepBatch is the batch of a SweepExpired given none.
	DefaultSweepBatch = 1000
	// MaxSweepBatch is the most coupons one expiry UPDATE should touch, so
	// the statement's locks stay short.
	MaxSweepBatch = 10000
)

// SweepExpired writes status expired on unused and locked coupons whose
// expires_at has passed, in conditional UPDATEs of at most batch rows
// each, until none is left or ctx ends; it returns how many it changed.
// A redeem racing it is safe either way: both are conditional on the row's
// state and on expires_at.
func (s *Service) SweepExpired(ctx context.Context, batch int) (int64, error) {
	if batch <= 0 {
		batch = DefaultSweepBatch
	}
	var total int64
	for {
		now := norm(s.now())
		res, err := s.execRetry(ctx, `UPDATE coupons SET status = 'expired', updated_at = ?
WHERE status IN ('unused','locked') AND expires_at <= ? ORDER BY expires_at LIMIT ?`, now, now, batch)
		if err != nil {
			return total, fmt.Errorf("coupon: sweep expired coupons: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("coupon: sweep expired coupons: %w", err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// execRetry runs one autocommit statement, again when InnoDB chose it as a
// deadlock victim: the statement was rolled back whole, so running it again
// is safe. A redeem and the expiry sweep's range UPDATE can deadlock on the
// status index; neither should fail for it.
func (s *Service) execRetry(ctx context.Context, stmt string, args ...any) (sql.Result, error) {
	return sqlretry.Do(ctx, retryDeadlockPaused, func() (sql.Result, error) { return s.db.ExecContext(ctx, stmt, args...) })
}

// retryDeadlock is the retry of coupon statements: deadlock victims only
// (a lock wait timeout already took innodb_lock_wait_timeout), the default
// number of runs.
var retryDeadlock = sqlretry.Policy{On: []uint16{sqlretry.ErLockDeadlock}}

// retryDeadlockPaused is retryDeadlock with a short, growing, jittered
// pause between runs, so two statements that deadlocked do not meet again
// at once.
var retryDeadlockPaused = sqlretry.Policy{On: retryDeadlock.On, Pause: func(attempt int) time.Duration {
	return time.Duration(attempt) * time.Duration(1+rand.IntN(5)) * time.Millisecond
}}
