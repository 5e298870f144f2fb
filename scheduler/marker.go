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
// Marking is bookkeeping, not delivery: while deliveries go on it waits, so
// MySQL, Redis and the CPU serve a burst first. It flushes once this
// worker has delivered nothing for MarkInterval and no queue of the cluster
// has waited on its pop for longer than that (a burst another worker is
// still draining counts too), and never waits longer than OrphanMarkAge/3.
type marker struct {
	s    *Scheduler
	mark Marker

	mu      sync.Mutex
	chunks  map[int][]queue.Chunk // by queue
	acked   []acked
	oldest  time.Time // when the oldest unflushed chunk was acked here
	lastAdd time.Time

	untold []sealed // published from their seals, not yet parsed (see tell)
}

// sealed is a chunk of queue q published from its seal at at by the
// scheduler's clock (for lateness) and at local by this machine's (for
// the marks' bookkeeping, as add's), still in its stored form; mark says
// it was acked (so it is marked once told).
type sealed struct {
	q         int
	ch        queue.Chunk
	at, local time.Time
	mark      bool
}

// tellEvery is the longest sealed chunks wait to be told while deliveries
// go on: the metrics of a long burst lag it by at most this.
const tellEvery = time.Second

// acked is one delivered chunk's pushes (out, or nil to build them from
// ch when flushed). Their rows for MySQL are built when they are flushed,
// after the burst, not on the delivery path.
type acked struct {
	out []push.Push
	ch  queue.Chunk
	at  time.Time
}

func newMarker(s *Scheduler, m Marker) *marker {
	return &marker{s: s, mark: m, chunks: map[int][]queue.Chunk{}}
}

// add queues an acked chunk of queue q, delivered as out (nil: its pushes
// are built from ch when marked, ids included), for marking.
func (m *marker) add(q int, ch queue.Chunk, out []push.Push) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addLocked(q, ch, out, time.Now())
}

func (m *marker) addLocked(q int, ch queue.Chunk, out []push.Push, at time.Time) {
	if len(m.acked) == 0 {
		m.oldest = at
	}
	if at.After(m.lastAdd) {
		m.lastAdd = at
	}
	m.chunks[q] = append(m.chunks[q], ch)
	m.acked = append(m.acked, acked{out: out, ch: ch, at: at})
}

// addSealed queues chunks of queue q published from their seals at at (by
// the scheduler's clock), unparsed, to be told (and marked, if acked) by
// tell.
func (m *marker) addSealed(q int, chs []queue.Chunk, at time.Time, acked bool) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ch := range chs {
		m.untold = append(m.untold, sealed{q: q, ch: ch, at: at, local: now, mark: acked})
	}
	if acked {
		m.lastAdd = now
	}
}

// tell parses the chunks published from their seals, shows them to Taken
// and Observe (with their lateness at publish) and queues the acked ones
// for marking. Parsing is work per reminder, so it waits until this
// worker's deliveries pause for MarkInterval (the burst is out), or until
// the oldest has waited tellEvery; all when force.
func (m *marker) tell(force bool) {
	m.mu.Lock()
	untold := m.untold
	wait := len(untold) == 0 || !force && time.Since(m.lastAdd) < m.s.cfg.MarkInterval && time.Since(untold[0].local) < tellEvery
	if wait {
		m.mu.Unlock()
		return
	}
	m.untold = nil
	m.mu.Unlock()
	told := untold[:0]
	for _, u := range untold {
		ch, err := u.ch.Parse()
		if err != nil {
			// Not ours to fix here: it stays in the marks set, where the
			// sweep finds it.
			m.s.log.Error("parsing a published chunk", "queue", u.q, "err", err)
			continue
		}
		m.s.taken(ch)
		m.s.observeChunk(ch, u.at)
		if u.mark {
			u.ch = ch
			told = append(told, u)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range told {
		m.addLocked(u.q, u.ch, nil, u.local)
	}
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
			m.tell(true)
			m.flush(ctx)
			return
		case <-tick.C:
			m.tell(false)
			if m.due(ctx) {
				m.flush(ctx)
			}
		case <-sweep.C:
			m.sweep(ctx)
		}
	}
}

// due reports whether to flush now: the cluster's deliveries paused for a
// MarkInterval, or the oldest mark waited its longest.
func (m *marker) due(ctx context.Context) bool {
	m.mu.Lock()
	pending := len(m.acked) > 0
	quiet := time.Since(m.lastAdd) >= m.s.cfg.MarkInterval
	overdue := time.Since(m.oldest) >= m.s.cfg.OrphanMarkAge/3
	m.mu.Unlock()
	switch {
	case !pending:
		return false
	case overdue:
		return true
	case !quiet:
		return false
	}
	return !m.backlog(ctx)
}

// backlog reports whether some queue has been due for longer than
// MarkInterval: a burst is being drained, here or by another worker. When
// Redis cannot tell, there is no backlog to yield to.
func (m *marker) backlog(ctx context.Context) bool {
	due, err := m.s.idx.DueQueues(ctx, m.s.now().Add(-m.s.cfg.MarkInterval), 1)
	return err == nil && len(due) > 0
}

// flush marks everything acked by this process so far.
func (m *marker) flush(ctx context.Context) {
	m.mu.Lock()
	chunks, acks := m.chunks, m.acked
	m.chunks, m.acked = map[int][]queue.Chunk{}, nil
	m.mu.Unlock()
	if len(acks) == 0 {
		return
	}
	if err := m.commit(ctx, acks, chunks); err != nil {
		// The marks stay in Redis; the sweep retries them later.
		m.s.log.Warn("marking sent reminders", "chunks", len(acks), "err", err)
	}
}

// commit records acks in MySQL, MarkBatch rows per statement, then lets
// Redis forget their chunks.
func (m *marker) commit(ctx context.Context, acks []acked, chunks map[int][]queue.Chunk) error {
	rows := make([]Sent, 0, m.s.cfg.MarkBatch)
	var n int64
	write := func() error {
		if len(rows) == 0 {
			return nil
		}
		if err := m.mark.MarkSent(ctx, rows); err != nil {
			return err
		}
		n += int64(len(rows))
		rows = rows[:0]
		return nil
	}
	for _, a := range acks {
		out := a.out
		if out == nil {
			out = ids(a.ch)
		}
		for _, p := range out {
			for _, it := range p.Items {
				if len(rows) == m.s.cfg.MarkBatch {
					if err := write(); err != nil {
						return err
					}
				}
				rows = append(rows, Sent{UserID: p.UserID, TemplateID: it.TemplateID, PushID: p.ID, SentAt: a.at})
			}
		}
	}
	if err := write(); err != nil {
		return err
	}
	m.s.stats.Marked.Add(n)
	for q, chs := range chunks {
		if err := m.s.idx.Forget(ctx, q, chs); err != nil {
			return err
		}
	}
	return nil
}

// sweep marks acks older than OrphanMarkAge in every queue, whoever acked
// them, and reports the oldest unmarked ack's age. It reads only the old
// marks: a young one (most, during a burst) may be large and is its
// worker's to flush.
func (m *marker) sweep(ctx context.Context) {
	n := m.s.cfg.Count()
	var lag time.Duration
	for q := 0; q < n; q++ {
		oldest, err := m.s.idx.OldestMark(ctx, q)
		if err != nil {
			m.s.log.Warn("reading unmarked acks", "queue", q, "err", err)
			continue
		}
		if oldest.IsZero() {
			continue
		}
		lag = max(lag, m.s.now().Sub(oldest))
		marked, err := m.s.idx.Marks(ctx, q, m.s.now().Add(-m.s.cfg.OrphanMarkAge), 64)
		if err != nil {
			m.s.log.Warn("reading unmarked acks", "queue", q, "err", err)
			continue
		}
		if len(marked) == 0 {
			continue
		}
		acks := make([]acked, len(marked))
		chunks := make([]queue.Chunk, len(marked))
		for i, mk := range marked {
			acks[i] = acked{out: ids(mk.Chunk), at: mk.AckedAt}
			chunks[i] = mk.Chunk
		}
		if err := m.commit(ctx, acks, map[int][]queue.Chunk{q: chunks}); err != nil {
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
		out[i] = push.Push{ID: push.ID(t.UserID, keys), UserID: t.UserID, DueAt: t.DueAt(), Items: items}
	}
	return out
}
