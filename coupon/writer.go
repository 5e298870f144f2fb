package coupon

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"couponpush/internal/batch"
	"couponpush/internal/redisscript"
	"couponpush/internal/sqlretry"
)

// claimWriter group-commits claims (see internal/batch): claims that
// arrive while an INSERT runs wait and go together in the next multi-row
// INSERT, one statement and one commit (one fsync) for all of them. Nothing
// waits on purpose: a lone claim is written at once. After the commit one
// Redis pipeline marks the batch's reservations done and drops their holds.
type claimWriter struct {
	s     *Service
	db    *sql.DB // Config.WriteDB
	batch *batch.Batcher[*claim, writeRes]
}

// writeRes is a claim write's outcome. err nil: written as id. known: the
// row was certainly not written by this claim (existing, if set, is the
// row that holds its request_id). Otherwise the outcome is unknown.
type writeRes struct {
	id       int64
	err      error
	known    bool
	existing *Coupon
}

// errSlotTaken: MySQL already has a coupon in the user's slot that Redis
// thought free (Redis lost the user's state).
var errSlotTaken = fmt.Errorf("coupon: the user's slot is taken in MySQL: %w", ErrLimitReached)

// statementTime bounds one batch: its INSERT, read-back and Redis pipeline.
const statementTime = 30 * time.Second

func newClaimWriter(s *Service) *claimWriter {
	b := &claimWriter{s: s, db: s.cfg.WriteDB}
	b.batch = batch.New(batch.Config{MaxBatch: 500, MaxFlushes: 4, Timeout: statementTime}, b.flush)
	return b
}

// write writes c and returns its outcome. It does not give up on ctx: the
// write is already shared with others; its own deadline bounds it.
func (b *claimWriter) write(_ context.Context, c *claim) writeRes {
	res, _ := b.batch.Do(context.Background(), c) // errs only when its ctx ends
	return res
}

// stop waits for the batches in hand.
func (b *claimWriter) stop() { b.batch.Wait() }

func (b *claimWriter) flush(ctx context.Context, batch []*claim, reply func(int, writeRes)) {
	// A claim whose budget ran out waiting is not sent: reconcile may
	// settle it soon, and nothing may commit after that.
	send := make([]*claim, 0, len(batch))
	at := make([]int, 0, len(batch)) // send[j] is batch[at[j]]
	for i, c := range batch {
		if time.Since(c.started) > b.s.cfg.WriteBudget {
			reply(i, writeRes{known: true, err: fmt.Errorf("coupon: claim %q out of time before its write: %w", c.requestID, ErrStockUnavailable)})
			continue
		}
		send = append(send, c)
		at = append(at, i)
	}
	if len(send) == 0 {
		return
	}
	res := b.insert(ctx, send)
	// Answer first; the Redis bookkeeping after it only saves reconcile
	// and retries a MySQL look-up.
	for j, r := range res {
		reply(at[j], r)
	}
	b.finish(ctx, send, res)
}

// insert writes the batch in one INSERT IGNORE with ids from the
// allocator. When every row went in (the usual case), that is all; when
// some were ignored, the batch's rows are read back by (template,
// request_id) to tell which are ours (our id) from older ones.
func (b *claimWriter) insert(ctx context.Context, batch []*claim) []writeRes {
	out := make([]writeRes, len(batch))
	fail := func(known bool, err error) []writeRes {
		for i := range out {
			out[i] = writeRes{known: known, err: err}
		}
		return out
	}
	ids, err := b.s.ids.next(ctx, len(batch))
	if err != nil {
		return fail(true, fmt.Errorf("coupon: allocate coupon ids: %w: %w", ErrStockUnavailable, err))
	}
	// Concurrent batches lock unique-key entries in one order.
	idx := make([]int, len(batch))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(x, y int) int {
		a, c := batch[x], batch[y]
		return cmp.Or(cmp.Compare(a.template.ID, c.template.ID), strings.Compare(a.requestID, c.requestID))
	})
	var q strings.Builder
	q.WriteString("INSERT IGNORE INTO coupons (id, template_id, user_id, slot, request_id, status, expires_at, sub, take_seq, claimed_at, updated_at) VALUES ")
	args := make([]any, 0, 10*len(batch))
	for n, i := range idx {
		c := batch[i]
		if n > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?, ?, ?, ?, ?, 'unused', ?, ?, ?, ?, ?)")
		args = append(args, ids[i], c.template.ID, c.user, c.resv.slot, c.requestID, c.expiresAt, c.sub, c.seq, c.claimedAt, c.claimedAt)
	}
	stmt := q.String()
	res, err := sqlretry.Do(ctx, retryDeadlock, func() (sql.Result, error) { return b.db.ExecContext(ctx, stmt, args...) })
	if err != nil {
		var myErr *mysql.MySQLError
		// The server refused the statement: nothing committed. Any other
		// error (a lost connection, a timeout) leaves the outcome unknown.
		return fail(errors.As(err, &myErr), fmt.Errorf("coupon: insert %d claims: %w", len(batch), err))
	}
	if n, err := res.RowsAffected(); err == nil && n == int64(len(batch)) {
		for i := range out {
			out[i] = writeRes{id: ids[i]}
		}
		return out
	}
	// Some rows were ignored: read the batch back by the unique key.
	var sel strings.Builder
	sel.WriteString("SELECT " + couponColumns + " FROM coupons WHERE (template_id, request_id) IN (")
	keys := make([]any, 0, 2*len(batch))
	for n, c := range batch {
		if n > 0 {
			sel.WriteByte(',')
		}
		sel.WriteString("(?, ?)")
		keys = append(keys, c.template.ID, c.requestID)
	}
	sel.WriteByte(')')
	rows, err := b.db.QueryContext(ctx, sel.String(), keys...)
	if err != nil {
		return fail(false, fmt.Errorf("coupon: read back claims: %w", err))
	}
	defer rows.Close()
	type key struct {
		t   int64
		rid string
	}
	got := map[key]Coupon{}
	now := norm(b.s.now())
	for rows.Next() {
		cp, err := scanCoupon(rows, now)
		if err != nil {
			return fail(false, fmt.Errorf("coupon: read back claims: %w", err))
		}
		got[key{cp.TemplateID, cp.RequestID}] = cp
	}
	if err := rows.Err(); err != nil {
		return fail(false, fmt.Errorf("coupon: read back claims: %w", err))
	}
	for i, c := range batch {
		cp, ok := got[key{c.template.ID, c.requestID}]
		switch {
		case ok && cp.ID == ids[i]:
			out[i] = writeRes{id: ids[i]}
		case ok:
			out[i] = writeRes{known: true, existing: &cp, err: ErrRequestConflict}
		default:
			// Ignored on the user's slot, or on the id itself (the id
			// counter went back, as after a Redis flush).
			var one int
			err := b.db.QueryRowContext(ctx, "SELECT 1 FROM coupons WHERE id = ?", ids[i]).Scan(&one)
			switch {
			case err == nil:
				b.s.ids.reset()
				out[i] = writeRes{known: true, err: fmt.Errorf("coupon: id %d taken: %w", ids[i], ErrStockUnavailable)}
			case errors.Is(err, sql.ErrNoRows):
				out[i] = writeRes{known: true, err: errSlotTaken}
			default:
				out[i] = writeRes{err: fmt.Errorf("coupon: read back claim: %w", err)}
			}
		}
	}
	return out
}

// finish marks written claims done and drops their holds, in one pipeline.
// A failure leaves them for reconcile, which finds the rows in MySQL.
func (b *claimWriter) finish(ctx context.Context, batch []*claim, res []writeRes) {
	pipe := redisscript.NewPipeline(b.s.rdb)
	pipe.Grow(2 * len(batch))
	n := 0
	for i, c := range batch {
		if res[i].err != nil {
			continue
		}
		done := "d|" + strconv.Itoa(c.resv.slot) + "|" + strconv.FormatInt(res[i].id, 10)
		pipe.Run(ctx, doneScript, []string{b.s.keys.user(c.template.ID, c.user)}, c.requestID, done)
		pipe.Run(ctx, releaseScript, []string{b.s.keys.sub(c.template.ID, c.sub)}, c.requestID, c.seq)
		n++
	}
	if n == 0 {
		return
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.s.log.Warn("mark claims done; reconcile will", "claims", n, "err", err)
	}
}
