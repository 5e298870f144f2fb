package coupon

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

// claimWriter group-commits claims: claims that arrive while an INSERT
// runs wait and go together in the next multi-row INSERT, one statement
// and one commit (one fsync) for all of them. Nothing waits on purpose: a
// lone claim is written at once. After the commit one Redis pipeline marks
// the batch's reservations done and drops their holds.
type claimWriter struct {
	s        *Service
	maxBatch int

	mu      sync.Mutex
	queue   []*writeReq
	running int
	limit   int
	wg      sync.WaitGroup
}

type writeReq struct {
	c    *claim
	done chan writeRes
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

const (
	errDeadlock   = 1213
	maxAttempts   = 5
	statementTime = 30 * time.Second
)

func newClaimWriter(s *Service) *claimWriter {
	return &claimWriter{s: s, maxBatch: 500, limit: 4}
}

// write writes c and returns its outcome. It does not give up on ctx: the
// write is already shared with others; its own deadline bounds it.
func (b *claimWriter) write(_ context.Context, c *claim) writeRes {
	r := &writeReq{c: c, done: make(chan writeRes, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, r)
	lead := b.running < b.limit
	if lead {
		b.running++
		b.wg.Add(1)
	}
	b.mu.Unlock()
	if lead {
		b.drain()
	}
	return <-r.done
}

func (b *claimWriter) stop() { b.wg.Wait() }

func (b *claimWriter) drain() {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.maxBatch)
		if n == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.mu.Unlock()
		b.run(batch)
	}
}

func (b *claimWriter) run(batch []*writeReq) {
	// A claim whose budget ran out waiting is not sent: reconcile may
	// settle it soon, and nothing may commit after that.
	send := batch[:0:0]
	for _, r := range batch {
		if time.Since(r.c.started) > b.s.cfg.WriteBudget {
			r.done <- writeRes{known: true, err: fmt.Errorf("coupon: claim %q out of time before its write: %w", r.c.requestID, ErrStockUnavailable)}
			continue
		}
		send = append(send, r)
	}
	if len(send) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), statementTime)
	defer cancel()
	res := b.insert(ctx, send)
	b.finish(ctx, send, res)
	for i, r := range send {
		r.done <- res[i]
	}
}

// insert writes the batch with INSERT IGNORE tagged by a random batch
// token, then reads back which rows are this batch's.
func (b *claimWriter) insert(ctx context.Context, batch []*writeReq) []writeRes {
	out := make([]writeRes, len(batch))
	// Concurrent batches lock unique-key entries in one order.
	idx := make([]int, len(batch))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(x, y int) int {
		a, c := batch[x].c, batch[y].c
		return cmp.Or(cmp.Compare(a.template.ID, c.template.ID), strings.Compare(a.requestID, c.requestID))
	})
	var tok [8]byte
	_, _ = crand.Read(tok[:])
	token := int64(binary.LittleEndian.Uint64(tok[:]) >> 1)
	var q strings.Builder
	q.WriteString("INSERT IGNORE INTO coupons (template_id, user_id, slot, request_id, status, expires_at, sub, take_seq, insert_batch, claimed_at, updated_at) VALUES ")
	args := make([]any, 0, 10*len(batch))
	for n, i := range idx {
		c := batch[i].c
		if n > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?, ?, ?, ?, 'unused', ?, ?, ?, ?, ?, ?)")
		args = append(args, c.template.ID, c.user, c.resv.slot, c.requestID, c.expiresAt, c.sub, c.seq, token, c.claimedAt, c.claimedAt)
	}
	var err error
	for attempt := 1; ; attempt++ {
		_, err = b.s.db.ExecContext(ctx, q.String(), args...)
		var myErr *mysql.MySQLError
		if err == nil || attempt == maxAttempts || !errors.As(err, &myErr) || myErr.Number != errDeadlock {
			break
		}
	}
	if err != nil {
		var myErr *mysql.MySQLError
		known := errors.As(err, &myErr) // the server refused the statement: nothing committed
		for i := range out {
			out[i] = writeRes{known: known, err: fmt.Errorf("coupon: insert %d claims: %w", len(batch), err)}
		}
		return out
	}
	// Read back by the unique key: ours carry the token.
	var sel strings.Builder
	sel.WriteString("SELECT " + couponColumns + ", insert_batch FROM coupons WHERE (template_id, request_id) IN (")
	keys := make([]any, 0, 2*len(batch))
	for n, r := range batch {
		if n > 0 {
			sel.WriteByte(',')
		}
		sel.WriteString("(?, ?)")
		keys = append(keys, r.c.template.ID, r.c.requestID)
	}
	sel.WriteByte(')')
	rows, err := b.s.db.QueryContext(ctx, sel.String(), keys...)
	if err != nil {
		for i := range out {
			out[i] = writeRes{err: fmt.Errorf("coupon: read back claims: %w", err)}
		}
		return out
	}
	defer rows.Close()
	type key struct {
		t   int64
		rid string
	}
	type found struct {
		c     Coupon
		batch int64
	}
	got := map[key]found{}
	now := norm(b.s.now())
	for rows.Next() {
		var f found
		cp, err := scanCoupon(scanWithBatch{rows, &f.batch}, now)
		if err != nil {
			for i := range out {
				out[i] = writeRes{err: fmt.Errorf("coupon: read back claims: %w", err)}
			}
			return out
		}
		f.c = cp
		got[key{cp.TemplateID, cp.RequestID}] = f
	}
	if err := rows.Err(); err != nil {
		for i := range out {
			out[i] = writeRes{err: fmt.Errorf("coupon: read back claims: %w", err)}
		}
		return out
	}
	for i, r := range batch {
		f, ok := got[key{r.c.template.ID, r.c.requestID}]
		switch {
		case ok && f.batch == token:
			out[i] = writeRes{id: f.c.ID}
		case ok:
			cp := f.c
			out[i] = writeRes{known: true, existing: &cp, err: ErrRequestConflict}
		default:
			out[i] = writeRes{known: true, err: errSlotTaken}
		}
	}
	return out
}

// scanWithBatch scans coupon columns followed by insert_batch.
type scanWithBatch struct {
	r     rowScanner
	batch *int64
}

func (s scanWithBatch) Scan(dest ...any) error { return s.r.Scan(append(dest, s.batch)...) }

// finish marks written claims done and drops their holds, in one pipeline.
// A failure leaves them for reconcile, which finds the rows in MySQL.
func (b *claimWriter) finish(ctx context.Context, batch []*writeReq, res []writeRes) {
	n := 0
	run := func(sha bool) error {
		pipe := b.s.rdb.Pipeline()
		for i, r := range batch {
			if res[i].err != nil {
				continue
			}
			c := r.c
			userKeys, subKeys := []string{b.s.keys.user(c.template.ID, c.user)}, []string{b.s.keys.sub(c.template.ID, c.sub)}
			done := "d|" + strconv.Itoa(c.resv.slot) + "|" + strconv.FormatInt(res[i].id, 10)
			if sha {
				doneScript.EvalSha(ctx, pipe, userKeys, c.requestID, done)
				releaseScript.EvalSha(ctx, pipe, subKeys, c.requestID, c.seq)
			} else {
				doneScript.Eval(ctx, pipe, userKeys, c.requestID, done)
				releaseScript.Eval(ctx, pipe, subKeys, c.requestID, c.seq)
			}
			n++
		}
		if n == 0 {
			return nil
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err := run(true)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		n = 0
		err = run(false) // the scripts load on the way
	}
	if err != nil {
		b.s.log.Warn("mark claims done; reconcile will", "claims", n, "err", err)
	}
}
