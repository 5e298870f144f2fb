package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"couponpush/balance"
	"couponpush/push"
	"couponpush/queue"
)

// Work ahead of due. A drop's reminders all fall due at one moment known
// long before, so a lease holder takes them up to PrepareAhead early
// (queue.Client.Prepare): merged into pushes with their ids fixed, as a
// pop would, into a ready chunk in Redis. It then builds and encodes the
// chunk's messages and seals them beside it (queue.Client.Seal). At the
// chunk's publish time by the Redis clock, whoever holds the queue begins
// it (queue.Client.Begin: one script per few chunks, nothing per item),
// publishes the sealed messages as they are and acks. Until it begins, a
// cancel withdraws its item from the chunk (and the seal with it: such a
// chunk is built again at begin), so a 204 is never pushed.
//
// Everything prepared lives in Redis: a holder that dies or loses its lease
// leaves the ready chunks to the next, which publishes the same pushes
// (same ids) at the same time. A chunk begun and not acked is a flight
// like any other, recovered and rebuilt from its items.

// beginBatch is how many due ready chunks one Begin takes; prepareRun how
// many chunks a slot prepares in a row before it looks for flights to
// recover and chunks to begin again.
const (
	beginBatch = 4
	prepareRun = 8
)

// prepare takes one chunk of work ahead of due from l's queue and seals
// it. more reports whether it took one (so the caller asks again).
func (s *Scheduler) prepare(ctx context.Context, l *queue.Lease) (more bool, err error) {
	began := time.Now()
	defer func() { s.stats.PrepareNs.Add(int64(time.Since(began))) }()
	p, err := s.idx.Prepare(ctx, l, queue.PrepareOptions{PopOptions: s.popOptions()})
	if err != nil {
		return false, err
	}
	if len(p.Chunk.Pushes) == 0 {
		return false, nil
	}
	s.stats.Prepared.Add(int64(len(p.Chunk.Pushes)))
	out, unsent, err := s.build(ctx, p.Chunk)
	if err != nil {
		// Templates cannot be read now: the chunk stays unsealed and is
		// built at begin, like a popped chunk.
		s.log.Warn("building a prepared chunk; it is built again at due", "queue", l.Queue, "chunk", p.ID, "err", err)
		return true, nil
	}
	if len(unsent) > 0 {
		return true, nil // settled at begin, where deliver dead-letters what cannot be built
	}
	enc, err := s.pub.Encode(out)
	if err != nil {
		return true, nil // likewise: deliver splits out what cannot be sent
	}
	sealed, err := s.idx.Seal(ctx, l, p.ID, enc)
	if err != nil {
		return false, err
	}
	if sealed {
		s.stats.Sealed.Add(int64(len(out)))
	}
	if s.cfg.AfterPrepare != nil {
		s.cfg.AfterPrepare()
	}
	return true, nil
}

// deliverBegun publishes ready chunks whose publish has begun: the sealed
// ones together, their messages as they are, then acked in one call; one
// without a seal is built and delivered like a popped chunk. The sealed
// chunks come unparsed, and stay so on this path: what is left of the
// burst at due is the publish and a step per chunk. The marker parses them
// once the burst is out, tells Taken and Observe, and marks them (see
// marker.tell).
func (s *Scheduler) deliverBegun(ctx context.Context, h *balance.Held, begun []queue.Begun) error {
	l := h.Lease
	var sealed []queue.Chunk
	var encoded [][]byte
	for _, b := range begun {
		if b.Encoded == nil {
			s.taken(b.Chunk)
			if err := s.deliver(ctx, h, b.Chunk); err != nil {
				return err
			}
			continue
		}
		sealed, encoded = append(sealed, b.Chunk), append(encoded, b.Encoded)
	}
	if len(sealed) == 0 {
		return nil
	}
	if s.cfg.BeforePublish != nil {
		s.cfg.BeforePublish()
	}
	began := time.Now()
	err := s.pub.PublishEncodedWhile(ctx, encoded, h.Valid)
	published := time.Now()
	s.stats.PublishNs.Add(int64(published.Sub(began)))
	switch {
	case push.Unsendable(err):
		// Refused as they are (nsqd's limits may have changed since they
		// were sealed): build each again, split it and set aside what
		// cannot go. Whatever nsqd took already is sent again under the
		// same push ids.
		for _, ch := range sealed {
			ch, err := ch.Parse()
			if err != nil {
				return fmt.Errorf("prepared chunk of queue %d: %w", l.Queue, err)
			}
			s.taken(ch)
			if err := s.deliver(ctx, h, ch); err != nil {
				return err
			}
		}
		return nil
	case errors.Is(err, push.ErrWithheld):
		s.stats.Fenced.Add(1)
		return errLeaseRunOut
	case err != nil:
		s.stats.PublishErrs.Add(1)
		return fmt.Errorf("publish %d prepared chunks of queue %d: %w", len(sealed), l.Queue, err)
	}
	at := s.now()
	for _, ch := range sealed {
		s.stats.Published.Add(int64(ch.Len()))
	}
	if s.cfg.BeforeAck != nil {
		s.cfg.BeforeAck()
	}
	_, err = s.idx.AckAll(ctx, l, sealed)
	s.stats.AckNs.Add(int64(time.Since(published)))
	// Published either way: Observe sees them; only acked ones are marked
	// (the next holder republishes and marks the others).
	s.marker.addSealed(l.Queue, sealed, at, err == nil)
	if err != nil {
		return fmt.Errorf("ack %d prepared chunks of queue %d: %w", len(sealed), l.Queue, err)
	}
	return nil
}

// observeChunk is observe for a chunk published from its seal at at (the
// pushes were counted then): the pushes Observe sees carry no id or grab
// start (the sealed messages do), and one value is reused for all of them.
func (s *Scheduler) observeChunk(ch queue.Chunk, at time.Time) {
	if s.cfg.Observe == nil {
		return
	}
	var p push.Push
	for _, t := range ch.Pushes {
		p.Items = p.Items[:0]
		for _, it := range t.Items {
			p.Items = append(p.Items, push.Item{TemplateID: it.TemplateID, PushAt: it.PushAt})
		}
		p.UserID, p.DueAt = t.UserID, t.DueAt()
		s.cfg.Observe(p, at.Sub(p.DueAt))
	}
}
