// Package sqlretry runs a MySQL statement again when the server rolled it
// back for a lock conflict: the one retry loop of the project.
//
// Only errors that roll back the statement whole, so that running it again
// is safe, are worth a retry, and each caller names the ones it retries on:
// a deadlock victim (ErLockDeadlock) was rolled back with its transaction;
// a lock wait timeout (ErLockWaitTimeout) rolls back only the statement
// (unless innodb_rollback_on_timeout), so it is safe only for autocommit
// statements.
package sqlretry

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MySQL error numbers (mysql.MySQLError.Number).
const (
	ErLockWaitTimeout uint16 = 1205 // ER_LOCK_WAIT_TIMEOUT
	ErLockDeadlock    uint16 = 1213 // ER_LOCK_DEADLOCK
)

// DefaultAttempts is how many runs a statement gets at most when a Policy
// says nothing.
const DefaultAttempts = 5

// Policy says which errors make a statement run again, how often and how.
type Policy struct {
	// On lists the MySQL error numbers worth another run (ErLockDeadlock,
	// ErLockWaitTimeout). Empty: none, the statement runs once.
	On []uint16
	// Attempts is the most runs, the first included. Default
	// DefaultAttempts.
	Attempts int
	// Pause, if set, is how long to wait before run attempt+1 (attempt is
	// 1 after the first run); the wait ends early with ctx. Nil: at once.
	Pause func(attempt int) time.Duration
	// OnRetry, if set, is told of each run about to be repeated (with Do's
	// ctx, for a logger).
	OnRetry func(ctx context.Context, attempt int, err error)
}

// Retryable reports whether err is a MySQL error with one of numbers.
func Retryable(err error, numbers ...uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && slices.Contains(numbers, me.Number)
}

// Do runs run until it succeeds, fails with an error p does not retry on,
// or has run p.Attempts times, and returns its last result. When ctx ends
// during a pause it returns ctx.Err().
func Do[T any](ctx context.Context, p Policy, run func() (T, error)) (T, error) {
	attempts := p.Attempts
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	for attempt := 1; ; attempt++ {
		v, err := run()
		if err == nil || attempt >= attempts || !Retryable(err, p.On...) {
			return v, err
		}
		if p.OnRetry != nil {
			p.OnRetry(ctx, attempt, err)
		}
		if p.Pause == nil {
			continue
		}
		t := time.NewTimer(p.Pause(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			var zero T
			return zero, ctx.Err()
		case <-t.C:
		}
	}
}
