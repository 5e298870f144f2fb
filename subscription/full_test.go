package subscription

import (
	"context"
	"errors"
	"testing"

	"couponpush/queue"
)

// TestSubscribeRefusedByAFullQueue: a queue that refuses the user's
// reminder (queue.ErrUserFull) fails Subscribe with ErrTooManyReminders, not
// ErrIndex, and the row written for it is cancelled, so no safety net
// indexes it again.
func TestSubscribeRefusedByAFullQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	idx := newFakeIndex()
	idx.failAdd = queue.ErrUserFull
	s := e.service(newClock(base), idx)
	u := e.user()
	_, _, err := s.Subscribe(context.Background(), u, e.template.ID, nil)
	if !errors.Is(err, ErrTooManyReminders) || errors.Is(err, ErrIndex) {
		t.Fatalf("subscribe = %v, want ErrTooManyReminders and not ErrIndex", err)
	}
	if r, ok := readRow(t, e.db, u, e.template.ID); !ok || r.status != string(StatusCancelled) || r.version != 2 {
		t.Fatalf("row = %+v (found %v), want cancelled at version 2", r, ok)
	}
}
