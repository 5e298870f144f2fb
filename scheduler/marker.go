package scheduler

import (
	"context"
	"sync"
	"time"

	"couponpush/push"
	"couponpush/queue"
)

// marker tells MySQL which reminders were sent, in batches of at most
// MarkBatch rows, and then lets Redis forget them. Acks wait in each queue's
// marks set until then, so a worker that dies with marks in hand loses
// nothing: after OrphanMarkAge any worker's sweep marks them. Marking twice
// is harmless (the UPDATE only moves pending rows; Forget is idempotent).
type marker struct {
	s    *Scheduler
	mark Marker

	mu      sync.Mutex
	pending map[int][]queue.Push // by queue
	rows    []Sent
	kick    chan struct{}
}

func newMarker(s *Scheduler, m Marker) *marker {
	return &marker{s: s, mark: m, pending: map[int][]queue.Push{}, kick: make(chan struct{}, 1)}
}

// add queues the acked pushes of queue q for marking.
func (m *marker) add(q int, taken []queue.Push, out []push.Push) {
	now := time.Now()
	m.mu.Lock()
	m.pending[q] = append(m.pending[q], taken...)
	for _, p := range out {
		for _, it := range p.Items {
			m.rows = append(m.rows, Sent{UserID: p.UserID, TemplateID: it.TemplateID, PushID: p.ID, SentAt: now})
		}
	}
	full := len(m.rows) >= m.s.cfg.MarkBatch
	m.mu.Unlock()
	if full {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
}

// run flushes marks until stop closes (after the slots have exited), then
// flushes once more so the last acks reach MySQL before the process exits.
func (m *marker) run(ctx context.Context, stop <-chan struct{}) {
	flush := time.NewTicker(m.s.cfg.MarkInterval)
	defer flush.Stop()
	sweep := time.NewTicker(m.s.cfg.OrphanMarkAge / 3)
	defer sweep.Stop()
	for {
		select {
		case <-stop:
			m.flush(ctx)
			return
		case <-flush.C:
			m.flush(ctx)
		case <-m.kick:
			m.flush(ctx)
		case <-sweep.C:
			m.sweep(ctx)
		}
	}
}

// flush marks everything acked by this process so far.
func (m *marker) flush(ctx context.Context) {
	m.mu.Lock()
	pending, rows := m.pending, m.rows
	m.pending, m.rows = map[int][]queue.Push{}, nil
	m.mu.Unlock()
	if len(rows) == 0 {
		return
	}
	if err := m.commit(ctx, rows, pending); err != nil {
		// The marks stay in Redis; the sweep retries them later.
		m.s.log.Warn("marking sent reminders", "rows", len(rows), "err", err)
	}
}

func (m *marker) commit(ctx context.Context, rows []Sent, pushes map[int][]queue.Push) error {
	for start := 0; start < len(rows); start += m.s.cfg.MarkBatch {
		end := min(start+m.s.cfg.MarkBatch, len(rows))
		if err := m.mark.MarkSent(ctx, rows[start:end]); err != nil {
			return err
		}
	}
	m.s.stats.Marked.Add(int64(len(rows)))
	for q, ps := range pushes {
		for start := 0; start < len(ps); start += m.s.cfg.MarkBatch {
			end := min(start+m.s.cfg.MarkBatch, len(ps))
			if err := m.s.idx.Forget(ctx, q, ps[start:end]); err != nil {
				return err
			}
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
		ps, oldest, err := m.s.idx.Marks(ctx, q, m.s.cfg.MarkBatch)
		if err != nil {
			m.s.log.Warn("reading unmarked acks", "queue", q, "err", err)
			continue
		}
		if len(ps) == 0 {
			continue
		}
		age := time.Since(oldest)
		lag = max(lag, age)
		if age < m.s.cfg.OrphanMarkAge {
			continue
		}
		rows := make([]Sent, 0, len(ps))
		for _, t := range ps {
			p, err := m.s.build(ctx, t)
			if err != nil {
				m.s.log.Warn("rebuilding an orphaned ack", "queue", q, "user_id", t.UserID, "err", err)
				continue
			}
			for _, it := range p.Items {
				rows = append(rows, Sent{UserID: p.UserID, TemplateID: it.TemplateID, PushID: p.ID, SentAt: oldest})
			}
		}
		if err := m.commit(ctx, rows, map[int][]queue.Push{q: ps}); err != nil {
			m.s.log.Warn("marking orphaned acks", "queue", q, "err", err)
		}
	}
	m.s.stats.MarkLagMs.Store(lag.Milliseconds())
}
