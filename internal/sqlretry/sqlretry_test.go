package sqlretry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

var (
	errDeadlock = fmt.Errorf("exec: %w", &mysql.MySQLError{Number: ErLockDeadlock, Message: "Deadlock found"})
	lockWait    = &mysql.MySQLError{Number: ErLockWaitTimeout, Message: "Lock wait timeout exceeded"}
	dupKey      = &mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}
	errNetwork  = errors.New("connection reset")
)

func TestDo(t *testing.T) {
	cases := []struct {
		name     string
		policy   Policy
		errs     []error // the runs' errors in turn; past the end: nil
		wantRuns int
		wantErr  error
	}{
		{"success at once", Policy{On: []uint16{ErLockDeadlock}}, nil, 1, nil},
		{"deadlock then success", Policy{On: []uint16{ErLockDeadlock}}, []error{errDeadlock, errDeadlock}, 3, nil},
		{"deadlock every time: default attempts", Policy{On: []uint16{ErLockDeadlock}}, repeat(errDeadlock, 10), DefaultAttempts, errDeadlock},
		{"deadlock every time: own attempts", Policy{On: []uint16{ErLockDeadlock}, Attempts: 8}, repeat(errDeadlock, 10), 8, errDeadlock},
		{"lock wait not retried when only errDeadlock is", Policy{On: []uint16{ErLockDeadlock}}, []error{lockWait}, 1, lockWait},
		{"lock wait retried when named", Policy{On: []uint16{ErLockDeadlock, ErLockWaitTimeout}}, []error{lockWait, errDeadlock}, 3, nil},
		{"other MySQL error", Policy{On: []uint16{ErLockDeadlock}}, []error{dupKey}, 1, dupKey},
		{"not a MySQL error", Policy{On: []uint16{ErLockDeadlock}}, []error{errNetwork}, 1, errNetwork},
		{"no errors named", Policy{}, []error{errDeadlock}, 1, errDeadlock},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runs, retried := 0, 0
			tc.policy.OnRetry = func(_ context.Context, attempt int, _ error) {
				retried++
				if attempt != runs {
					t.Errorf("OnRetry attempt %d after run %d", attempt, runs)
				}
			}
			v, err := Do(context.Background(), tc.policy, func() (int, error) {
				runs++
				if runs <= len(tc.errs) && tc.errs[runs-1] != nil {
					return -1, tc.errs[runs-1]
				}
				return runs, nil
			})
			if runs != tc.wantRuns {
				t.Errorf("%d runs, want %d", runs, tc.wantRuns)
			}
			if retried != runs-1 {
				t.Errorf("OnRetry called %d times for %d runs", retried, runs)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("err %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && v != runs {
				t.Errorf("value %d, want the last run's %d", v, runs)
			}
		})
	}
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

func TestDoPause(t *testing.T) {
	var pauses []int
	p := Policy{On: []uint16{ErLockDeadlock}, Attempts: 3, Pause: func(attempt int) time.Duration {
		pauses = append(pauses, attempt)
		return time.Microsecond
	}}
	_, err := Do(context.Background(), p, func() (struct{}, error) { return struct{}{}, errDeadlock })
	if !errors.Is(err, errDeadlock) {
		t.Fatalf("err %v, want the errDeadlock", err)
	}
	if len(pauses) != 2 || pauses[0] != 1 || pauses[1] != 2 {
		t.Fatalf("pauses after runs %v, want [1 2]", pauses)
	}
}

func TestDoPauseEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	runs := 0
	p := Policy{On: []uint16{ErLockDeadlock}, Pause: func(int) time.Duration {
		cancel()
		return time.Hour
	}}
	_, err := Do(ctx, p, func() (int, error) { runs++; return 0, errDeadlock })
	if !errors.Is(err, context.Canceled) || runs != 1 {
		t.Fatalf("Do: %d runs, err %v; want 1 run, context.Canceled", runs, err)
	}
}
