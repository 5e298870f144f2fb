// Package seed writes many pending subscriptions fast, for tests and the
// bench that need a large burst loaded before it falls due: MySQL rows as
// the subscription service writes a new one (pending, version 1) in
// multi-row INSERTs, then their index entries through a queue.Router, the
// same call the service makes.
package seed

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"couponpush/queue"
)

// Adder indexes a reminder; *queue.Router is one.
type Adder interface {
	Add(ctx context.Context, e queue.Entry) error
}

// Subscriptions writes entries (Version is set to 1) and indexes them
// through idx, with the given number of concurrent index writers.
func Subscriptions(ctx context.Context, db *sql.DB, idx Adder, writers int, entries []queue.Entry) error {
	now := time.Now().UTC()
	const rows = 1000
	for start := 0; start < len(entries); start += rows {
		chunk := entries[start:min(start+rows, len(entries))]
		var q strings.Builder
		q.WriteString("INSERT INTO subscriptions (user_id, template_id, push_at, status, version, created_at, updated_at) VALUES ")
		args := make([]any, 0, len(chunk)*5)
		for i, e := range chunk {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?, ?, ?, 'pending', 1, ?, ?)")
			args = append(args, e.UserID, e.TemplateID, e.PushAt.UTC(), now, now)
		}
		if _, err := db.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("seed: insert subscriptions: %w", err)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(entries)); i = next.Add(1) - 1 {
				e := entries[i]
				e.Version = 1
				if err := idx.Add(ctx, e); err != nil {
					errs <- fmt.Errorf("seed: index %+v: %w", e, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
