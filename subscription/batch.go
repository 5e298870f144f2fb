package subscription

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"database/sql"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"couponpush/internal/batch"
	"couponpush/internal/sqlretry"
)

// inserter group-commits new subscriptions (see internal/batch): PUTs
// that arrive while an INSERT is running wait and go together in the next
// multi-row INSERT, one statement and one commit (one fsync) for all of
// them. Nothing waits on purpose: a lone PUT is inserted at once, and
// batches grow only as far as load makes them. Each caller learns whether
// its own row was created; a row that already existed is left alone for the
// caller's usual path.
//
// It serves only the hot path (a template whose grab_start is final); the
// first insert for a template goes through the checked single-row path.
type inserter struct {
	db    *sql.DB
	retry sqlretry.Policy
	batch *batch.Batcher[insertReq, insertRes]
}

type insertReq struct {
	userID, templateID int64
	pushAt, stamp      time.Time
}

type insertRes struct {
	created bool
	err     error
}

func newInserter(db *sql.DB, retry sqlretry.Policy) *inserter {
	b := &inserter{db: db, retry: retry}
	// The requests' own contexts may end while others still wait; the
	// statement is bounded by the batch's own deadline instead.
	b.batch = batch.New(batch.Config{MaxBatch: 500, MaxFlushes: 4, Timeout: 10 * time.Second}, b.flush)
	return b
}

// insert writes a pending row at version 1 for (userID, templateID) unless
// one exists; created reports whether this call's row was written.
func (b *inserter) insert(ctx context.Context, userID, templateID int64, pushAt, stamp time.Time) (bool, error) {
	res, err := b.batch.Do(ctx, insertReq{userID: userID, templateID: templateID, pushAt: pushAt, stamp: stamp})
	if err != nil {
		// The row may still be written; a retried PUT finds it and indexes it.
		return false, err
	}
	return res.created, res.err
}

// flush inserts one batch and answers each request in it.
func (b *inserter) flush(ctx context.Context, batch []insertReq, reply func(int, insertRes)) {
	created, err := b.write(ctx, batch)
	for i := range batch {
		if err != nil {
			reply(i, insertRes{err: err})
			continue
		}
		reply(i, insertRes{created: created[i]})
	}
}

func (b *inserter) write(ctx context.Context, batch []insertReq) ([]bool, error) {
	// Concurrent batches lock unique-key entries in one order, so they do
	// not deadlock each other.
	idx := make([]int, len(batch))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(x, y int) int {
		return cmp.Or(cmp.Compare(batch[x].userID, batch[y].userID), cmp.Compare(batch[x].templateID, batch[y].templateID))
	})
	var tok [8]byte
	_, _ = crand.Read(tok[:]) // crypto/rand.Read never fails
	token := int64(binary.LittleEndian.Uint64(tok[:]) >> 1)
	var q strings.Builder
	q.WriteString("INSERT INTO subscriptions (user_id, template_id, push_at, status, version, created_at, updated_at, insert_batch) VALUES ")
	args := make([]any, 0, 6*len(batch))
	for n, i := range idx {
		r := batch[i]
		if n > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?, ?, ?, 'pending', 1, ?, ?, ?)")
		args = append(args, r.userID, r.templateID, r.pushAt, r.stamp, r.stamp, token)
	}
	// A duplicate changes nothing (and counts 0 rows: clientFoundRows off).
	q.WriteString(" ON DUPLICATE KEY UPDATE user_id = user_id")
	stmt := q.String()
	res, err := sqlretry.Do(ctx, b.retry, func() (sql.Result, error) { return b.db.ExecContext(ctx, stmt, args...) })
	if err != nil {
		return nil, fmt.Errorf("subscription: insert %d new subscriptions: %w", len(batch), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, fmt.Errorf("subscription: insert %d new subscriptions: %w", len(batch), err)
	}
	created := make([]bool, len(batch))
	if int(n) == len(batch) {
		for i := range created {
			created[i] = true
		}
		return created, nil
	}
	// Some rows existed: ours carry this batch's token. Of two PUTs of one
	// pair in one batch, the first in the batch created the row; the other
	// finds it.
	var sel strings.Builder
	sel.WriteString("SELECT user_id, template_id FROM subscriptions WHERE insert_batch = ? AND (user_id, template_id) IN (")
	keys := make([]any, 0, 1+2*len(batch))
	keys = append(keys, token)
	for i, r := range batch {
		if i > 0 {
			sel.WriteByte(',')
		}
		sel.WriteString("(?, ?)")
		keys = append(keys, r.userID, r.templateID)
	}
	sel.WriteByte(')')
	rows, err := b.db.QueryContext(ctx, sel.String(), keys...)
	if err != nil {
		return nil, fmt.Errorf("subscription: read back new subscriptions: %w", err)
	}
	defer rows.Close()
	type key struct{ u, t int64 }
	ours := map[key]bool{}
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.u, &k.t); err != nil {
			return nil, fmt.Errorf("subscription: read back new subscriptions: %w", err)
		}
		ours[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("subscription: read back new subscriptions: %w", err)
	}
	for i, r := range batch {
		k := key{r.userID, r.templateID}
		created[i] = ours[k]
		ours[k] = false
	}
	return created, nil
}
