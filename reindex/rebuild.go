package reindex

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"couponpush/queue"
)

// Adder is what Rebuild writes through: a queue.Router (Add is idempotent
// and version-aware, and answers queue.ErrInFlight for a taken reminder).
type Adder interface {
	Add(ctx context.Context, e queue.Entry) error
}

// States is optional on an Adder: when it has it, Rebuild asks, before
// adding, what the index holds for each entry (0: nothing), to count what
// it indexed apart from what was there or was taken (see queue.Client.States).
type States interface {
	States(ctx context.Context, entries []queue.Entry) ([]queue.EntryState, error)
}

// Routed is the Adder Rebuild is meant for: Router's writes, and Client's
// States under the router's view of the layout.
type Routed struct {
	Router *queue.Router
	Client *queue.Client
}

// Add indexes e through the router.
func (r Routed) Add(ctx context.Context, e queue.Entry) error { return r.Router.Add(ctx, e) }

// States reads what the index holds for entries under the router's layout.
func (r Routed) States(ctx context.Context, entries []queue.Entry) ([]queue.EntryState, error) {
	l, err := r.Router.Layout(ctx)
	if err != nil {
		return nil, err
	}
	return r.Client.States(ctx, l, entries)
}

// RebuildResult counts one Rebuild.
type RebuildResult struct {
	Read    int64 // pending rows read from MySQL
	Indexed int64 // of those, absent from the index and written to it
	Present int64 // pending or cancelled in the index already; Add ran anyway and kept the newer version
	Taken   int64 // taken from their queue (being published, or sent and not yet marked): left alone
	Refused int64 // refused by their queue: the user holds queue.Options.MaxRemindersPerUser already
}

// rebuildWriters is how many Adds of one batch run at once.
const rebuildWriters = 16

// Rebuild re-indexes every pending reminder of MySQL (DESIGN R8): rows in
// id order, batch per SELECT, each written with idx.Add at its row's
// version. It is idempotent and safe while workers run:
//
//   - a sent row is never read, so it is never indexed again;
//   - Add ignores an entry the index holds at an equal or newer version,
//     so a cancel or a newer PUT is never undone;
//   - a reminder already taken from its queue answers queue.ErrInFlight and
//     is counted in Taken, not indexed again (a dead-lettered one too: it
//     stays taken until it is replayed and sent);
//   - a reminder of a user at the queue's cap answers queue.ErrUserFull and
//     is counted in Refused;
//   - each batch's rows are read with a shared lock held until their Adds
//     are done, so a sent-mark for one of them waits: a reminder cannot be
//     marked sent and dropped from the index between the read that saw it
//     pending and the Add (which would index it again and send it twice).
//
// progress, if not nil, is called after each batch with the rows read so
// far and the pending rows counted at the start (done may pass total when
// rows are added meanwhile).
func Rebuild(ctx context.Context, db *sql.DB, idx Adder, batch int, progress func(done, total int64)) (RebuildResult, error) {
	var res RebuildResult
	if batch < 1 {
		return res, fmt.Errorf("reindex rebuild: batch %d < 1", batch)
	}
	var total int64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM subscriptions WHERE status = 'pending'`).Scan(&total); err != nil {
		return res, fmt.Errorf("reindex rebuild: count pending: %w", err)
	}
	if progress != nil {
		progress(0, total)
	}
	var afterID int64
	for {
		n, last, err := rebuildBatch(ctx, db, idx, afterID, batch, &res)
		if err != nil {
			return res, err
		}
		if n == 0 {
			return res, nil
		}
		afterID = last
		if progress != nil {
			progress(res.Read, total)
		}
		if n < batch {
			return res, nil
		}
	}
}

// rebuildBatch reads and indexes up to batch pending rows with id > afterID
// in one READ COMMITTED transaction whose locking read keeps the rows from
// being marked sent until their Adds are done. It returns how many rows it
// read and the last id.
func rebuildBatch(ctx context.Context, db *sql.DB, idx Adder, afterID int64, batch int, res *RebuildResult) (int, int64, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, 0, fmt.Errorf("reindex rebuild: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // read-only: nothing to commit
	rows, err := tx.QueryContext(ctx, `SELECT id, user_id, template_id, push_at, version FROM subscriptions
		WHERE id > ? AND status = 'pending' ORDER BY id LIMIT ? LOCK IN SHARE MODE`, afterID, batch)
	if err != nil {
		return 0, 0, fmt.Errorf("reindex rebuild: read pending after id %d: %w", afterID, err)
	}
	var page []queue.Entry
	last := afterID
	for rows.Next() {
		var e queue.Entry
		if err := rows.Scan(&last, &e.UserID, &e.TemplateID, &e.PushAt, &e.Version); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("reindex rebuild: read pending after id %d: %w", afterID, err)
		}
		page = append(page, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("reindex rebuild: read pending after id %d: %w", afterID, err)
	}
	if len(page) == 0 {
		return 0, last, nil
	}
	if err := stampPriorities(ctx, tx, page); err != nil {
		return 0, 0, fmt.Errorf("reindex rebuild: %w", err)
	}
	before := make([]queue.EntryState, len(page))
	if p, ok := idx.(States); ok {
		if before, err = p.States(ctx, page); err != nil {
			return 0, 0, fmt.Errorf("reindex rebuild: %w", err)
		}
	}
	taken, refused := make([]bool, len(page)), make([]bool, len(page))
	if err := addAll(ctx, idx, page, taken, refused); err != nil {
		return 0, 0, fmt.Errorf("reindex rebuild: %w", err)
	}
	res.Read += int64(len(page))
	for i := range page {
		switch {
		case refused[i]:
			res.Refused++
		case taken[i] || before[i] == queue.StateTaken || before[i] == queue.StateTakenMoved:
			res.Taken++
		case before[i] != 0:
			res.Present++
		default:
			res.Indexed++
		}
	}
	return len(page), last, nil
}

// addAll adds page with a few concurrent writers, marking in taken the
// entries that answered queue.ErrInFlight and in refused those that
// answered queue.ErrUserFull. It stops at the first other error.
func addAll(ctx context.Context, idx Adder, page []queue.Entry, taken, refused []bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range min(rebuildWriters, len(page)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				err := idx.Add(ctx, page[i])
				switch {
				case errors.Is(err, queue.ErrInFlight):
					taken[i] = true
				case errors.Is(err, queue.ErrUserFull):
					refused[i] = true
				case err != nil:
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for i := range page {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
