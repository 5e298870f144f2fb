package scheduler

import (
	"context"
	"sync"
	"time"

	"couponpush/push"
	"couponpush/queue"
)

// marker tells MySQL which reminders were sent, in UPDATEs of at most
// MarkBatch rows, then lets Redis forget the acked chunks (marks and taken entries). Acks
// wait there until then, so a worker that dies with marks in hand loses
// nothing: after OrphanMarkAge any worker's sweep marks them. Marking twice
// is harmless (the UPDATE only moves pending rows; Forget is idempotent).
//
// Marking is bookkeeping, not delivery: while the slots are busy it waits
// (up to MarkInterval after the last delivery, and never longer than
// OrphanMarkAge/3 in all), so MySQL and Redis serve the burst first.
type marker struct {
	s    *Scheduler
	mark Marker

	mu      sync.Mutex
	chunks  map[int][]queue.Chunk // by queue
	rows    []Sent
	oldest  time.Time // when the oldest unflushed chunk was acked here
	lastAdd time.Time
}

func newMarker(s *Scheduler, m Marker) *marker {
	return &marker{s: s, mark: m, chunks: map[int][]queue.Chunk{}}
}

// add queues an acked chunk of queue q, delivered as out, for marking.
func (m *marker) add(q int, ch queue.Chunk, out []push.Push) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.rows) == 0 {
		m.oldest = now
	}
	m.lastAdd = now
	m.chunks[q] = append(m.chunks[q], ch)
	m.rows = appendRows(m.rows, out, now)
}

func appendRows(rows []Sent, out []push.Push, at time.Time) []Sent {
	for _, p := range out {
		for _, it := range p.Items {
			rows = append(rows, Sent{UserID: p.UserID, TemplateID: it.TemplateID, PushID: p.ID, SentAt: at})
		}
	}
	return rows
}

// run flushes marks until stop closes (after the slots have exited), then
// flushes once more so the last acks reach MySQL before the process exits.
func (m *marker) run(ctx context.Context, stop <-chan struct{}) {
	tick := time.NewTicker(m.s.cfg.MarkInterval)
	defer tick.Stop()
	sweep := time.NewTicker(m.s.cfg.OrphanMarkAge / 3)
	defer sweep.Stop()
	for {
		select {
		case <-stop:
			m.flush(ctx)
			return
		case <-tick.C:
			if m.due() {
				m.flush(ctx)
			}
		case <-sweep.C:
			m.sweep(ctx)
		}
	}
}

// due reports whether to flush now: deliveries paused for a MarkInterval,
// or the oldest mark waited its longest.
func (m *marker) due() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.rows) == 0 {
		return false
	}
	quiet := time.Since(m.lastAdd) >= m.s.cfg.MarkInterval
	return quiet || time.Since(m.oldest) >= m.s.cfg.OrphanMarkAge/3
}

// flush marks everything acked by this process so far.
func (m *marker) flush(ctx context.Context) {
	m.mu.Lock()
	chunks, rows := m.chunks, m.rows
	m.chunks, m.rows = map[int][]queue.Chunk{}, nil
	m.mu.Unlock()
	if len(rows) == 0 {
		return
	}
	if err := m.commit(ctx, rows, chunks); err != nil {
		// The marks stay in Redis; the sweep retries them later.
		m.s.log.Warn("marking sent reminders", "rows", len(rows), "err", err)
	}
}

func (m *marker) commit(ctx context.Context, rows []Sent, chunks map[int][]queue.Chunk) error {
	for start := 0; start < len(rows); start += m.s.cfg.MarkBatch {
		end := min(start+m.s.cfg.MarkBatch, len(rows))
		if err := m.mark.MarkSent(ctx, rows[start:end]); err != nil {
			return err
		}
	}
	m.s.stats.Marked.Add(int64(len(rows)))
	for q, chs := range chunks {
		if err := m.s.idx.Forget(ctx, q, chs); err != nil {
			return err
		}
	}
	return nil
}

// sweep marks acks older than OrphanMarkAge in every queue, whoever acked
// them, and reports the oldest unmarked ack's age.
func (m *marker) sweep(ctx context.Context) {
	n := m.s.cfg.Count()
	var lag time.Duration
	for q := 0; q < n; q++ {
		marked, err := m.s.idx.Marks(ctx, q, 64)
		if err != nil {
			m.s.log.Warn("reading unmarked acks", "queue", q, "err", err)
			continue
		}
		var rows []Sent
		var chunks []queue.Chunk
		for _, mk := range marked {
			age := time.Since(mk.AckedAt)
			lag = max(lag, age)
			if age < m.s.cfg.OrphanMarkAge {
				break // oldest first: the rest are younger
			}
			rows = appendRows(rows, ids(mk.Chunk), mk.AckedAt)
			chunks = append(chunks, mk.Chunk)
		}
		if len(chunks) == 0 {
			continue
		}
		if err := m.commit(ctx, rows, map[int][]queue.Chunk{q: chunks}); err != nil {
			m.s.log.Warn("marking orphaned acks", "queue", q, "err", err)
		}
	}
	m.s.stats.MarkLagMs.Store(lag.Milliseconds())
}

// ids gives a chunk's pushes their ids (all marking needs; no template reads).
func ids(ch queue.Chunk) []push.Push {
	out := make([]push.Push, len(ch.Pushes))
	for i, t := range ch.Pushes {
		keys := make([]push.Key, len(t.Items))
		items := make([]push.Item, len(t.Items))
		for j, it := range t.Items {
			keys[j] = push.Key{TemplateID: it.TemplateID, PushAtMs: it.PushAt.UnixMilli()}
			items[j] = push.Item{TemplateID: it.TemplateID, PushAt: it.PushAt}
		}
		out[i] = push.Push{ID: push.ID(t.UserID, keys), UserID: t.UserID, Items: items}
	}
	return out
}
