package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"couponpush/balance"
	"couponpush/push"
	"couponpush/queue"
)

// Pushes that can never be published. Left in flight, such a push would
// stop its queue: every lease holder republishes the flights first. So a
// chunk whose publish fails in a way retrying cannot fix (push.Unsendable)
// is split until only the pushes that fail on their own are left; the
// others are published, and queue.DeadLetter sets the unsendable ones
// aside in one fenced script and settles the rest as acked. A failure
// worth retrying (nsqd down, timeouts) at any point leaves the chunk in
// flight as before: it is never dead-lettered.

// settle publishes what of ch can be published and dead-letters the rest.
// out is ch built (a zero push for each entry of unsent, which could not be
// built). unsent is empty when Publish of all of out was refused as
// unsendable, with refused as the error.
func (s *Scheduler) settle(ctx context.Context, h *balance.Held, ch queue.Chunk, out []push.Push, unsent []queue.Unsent, refused error) error {
	l := h.Lease
	began := time.Now()
	left := make([]int, 0, len(out))
	for i := range out {
		if !slices.ContainsFunc(unsent, func(u queue.Unsent) bool { return u.Index == i }) {
			left = append(left, i)
		}
	}
	var bad []queue.Unsent
	var err error
	if len(unsent) > 0 {
		bad, err = s.publishSome(ctx, h, out, left)
	} else {
		bad, err = s.split(ctx, h, out, left, refused)
	}
	s.stats.PublishNs.Add(int64(time.Since(began)))
	if err != nil {
		s.stats.PublishErrs.Add(1)
		return fmt.Errorf("publish %d pushes of queue %d: %w", len(left), l.Queue, err)
	}
	unsent = append(unsent, bad...)
	if s.cfg.BeforeAck != nil {
		s.cfg.BeforeAck()
	}
	acked := time.Now()
	if len(unsent) == 0 { // the batch was refused, its halves were not
		if _, err := s.idx.Ack(ctx, l, ch); err != nil {
			return fmt.Errorf("ack %d pushes of queue %d: %w", len(out), l.Queue, err)
		}
		s.stats.AckNs.Add(int64(time.Since(acked)))
		s.marker.add(l.Queue, ch, out)
		return nil
	}
	rest, ok, err := s.idx.DeadLetter(ctx, l, ch, unsent)
	s.stats.AckNs.Add(int64(time.Since(acked)))
	if err != nil {
		// The sent pushes are republished by the next try, same ids.
		return fmt.Errorf("dead-letter %d of %d pushes of queue %d: %w", len(unsent), len(out), l.Queue, err)
	}
	if !ok {
		return nil // no longer in flight: another holder settled it
	}
	s.stats.DeadLettered.Add(int64(len(unsent)))
	named := ids(ch)
	for _, u := range unsent {
		s.log.Error("push cannot be published; moved to the dead letters", "queue", l.Queue,
			"push_id", named[u.Index].ID, "user_id", named[u.Index].UserID, "reason", u.Reason)
	}
	if len(rest.Pushes) > 0 {
		sent := make([]push.Push, 0, len(rest.Pushes))
		for _, i := range left {
			if !slices.ContainsFunc(bad, func(u queue.Unsent) bool { return u.Index == i }) {
				sent = append(sent, out[i])
			}
		}
		s.marker.add(l.Queue, rest, sent)
	}
	return nil
}

// publishSome publishes the pushes of out at idx, splitting them if nsqd
// refuses them as unsendable; it returns those that fail alone.
func (s *Scheduler) publishSome(ctx context.Context, h *balance.Held, out []push.Push, idx []int) ([]queue.Unsent, error) {
	if len(idx) == 0 {
		return nil, nil
	}
	err := s.publish(ctx, h, out, idx)
	switch {
	case err == nil:
		return nil, nil
	case push.Unsendable(err):
		return s.split(ctx, h, out, idx, err)
	}
	return nil, err
}

// split publishes the two halves of idx, whose pushes were refused
// together with the error refused, each with publishSome. A push refused
// alone is unsendable for that reason.
func (s *Scheduler) split(ctx context.Context, h *balance.Held, out []push.Push, idx []int, refused error) ([]queue.Unsent, error) {
	if len(idx) == 1 {
		return []queue.Unsent{{Index: idx[0], Reason: refused.Error()}}, nil
	}
	half := len(idx) / 2
	bad, err := s.publishSome(ctx, h, out, idx[:half])
	if err != nil {
		return nil, err
	}
	more, err := s.publishSome(ctx, h, out, idx[half:])
	return append(bad, more...), err
}

// publish sends the pushes of out at idx and counts those nsqd accepted.
func (s *Scheduler) publish(ctx context.Context, h *balance.Held, out []push.Push, idx []int) error {
	some := make([]push.Push, len(idx))
	for i, j := range idx {
		some[i] = out[j]
	}
	if err := s.send(ctx, h, some); err != nil {
		return err
	}
	s.observe(some)
	return nil
}

// errLeaseRunOut is send's refusal: the lease may have expired.
var errLeaseRunOut = fmt.Errorf("lease has run out by this process's clock, not publishing: %w", queue.ErrLeaseLost)

// send publishes pushes while h still holds (balance.Held.Valid): a worker
// that was stopped or stalled past its lease leaves its pushes to the
// queue's next holder, which republishes them under the same ids.
func (s *Scheduler) send(ctx context.Context, h *balance.Held, pushes []push.Push) error {
	err := s.pub.PublishWhile(ctx, pushes, h.Valid)
	if errors.Is(err, push.ErrWithheld) {
		s.stats.Fenced.Add(1)
		return errLeaseRunOut
	}
	return err
}
