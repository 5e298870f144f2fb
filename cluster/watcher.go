package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// Timings of the watcher; variables so tests can shorten them.
var (
	// watchWait is the WaitTime of each blocking query.
	watchWait = MaxBlockingWait
	// watchMinGap spaces queries that return at once, so a misbehaving
	// index cannot make the watcher spin.
	watchMinGap = 50 * time.Millisecond
	// firstReadTimeout bounds the read Start makes before it returns.
	firstReadTimeout = 5 * time.Second
	// retryMin and retryMax bound the backoff while Consul is unreachable.
	retryMin, retryMax = 250 * time.Millisecond, 5 * time.Second
)

// QueueCountWatcher follows the queue count N in Consul with blocking
// queries and always has a usable N: the last good value, or the default
// while the key is absent. Bad values are logged and ignored; while Consul
// is unreachable the last N stays and the watcher retries with backoff.
type QueueCountWatcher struct {
	c       *Client
	def     int
	log     *slog.Logger
	n       atomic.Int64
	changes chan int

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	done    chan struct{}

	// Owned by the watch goroutine (and by Start before it begins).
	starting bool   // the first read in Start: no change log or notification
	index    uint64 // WaitIndex of the next query
	badIndex uint64 // modify index of the last bad value logged
	out      outage
}

// NewQueueCountWatcher returns a watcher that uses def while the key is
// absent; def outside 1..MaxQueueCount is replaced by 1. Call Start.
func (c *Client) NewQueueCountWatcher(def int) *QueueCountWatcher {
	if checkQueueCount(def) != nil {
		c.logger.Warn("bad default queue count; using 1", slog.Int("default", def))
		def = 1
	}
	w := &QueueCountWatcher{
		c:       c,
		def:     def,
		log:     c.logger.With(slog.String("key", c.QueueCountKey())),
		changes: make(chan int, 1),
		out:     outage{min: retryMin, max: retryMax},
	}
	w.n.Store(int64(def))
	return w
}

// Start reads N once (bounded to a few seconds; if Consul is down the
// default stays in force) and then follows the key in a goroutine that runs
// until ctx ends or Stop. It fails only if called twice.
func (w *QueueCountWatcher) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return errors.New("queue count watcher: already started")
	}
	w.started = true
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})

	first, cancel := context.WithTimeout(ctx, firstReadTimeout)
	w.starting = true
	w.poll(first, 0)
	w.starting = false
	cancel()
	w.log.Info("queue count", slog.Int("n", w.Count()), slog.Bool("consul_reachable", !w.out.down()))

	go w.run(ctx)
	return nil
}

// Stop ends the watch goroutine and waits for it. It is idempotent and safe
// to call without Start.
func (w *QueueCountWatcher) Stop() {
	w.mu.Lock()
	if !w.started {
		w.started = true // a later Start fails instead of leaking
		w.mu.Unlock()
		return
	}
	cancel, done := w.cancel, w.done
	w.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Count returns the current N. It is a single atomic load, fit for the hot
// path.
func (w *QueueCountWatcher) Count() int { return int(w.n.Load()) }

// Changes returns a channel that receives N each time it changes after
// Start (not the initial value). It holds one value and the latest wins: a
// slow reader sees the newest N, never a backlog. It is never closed.
func (w *QueueCountWatcher) Changes() <-chan int { return w.changes }

// run follows the key until ctx ends.
func (w *QueueCountWatcher) run(ctx context.Context) {
	defer close(w.done)
	for {
		var wait time.Duration
		if w.out.down() {
			wait = w.out.delay()
		}
		if !sleep(ctx, wait) {
			return
		}
		began := time.Now()
		w.poll(ctx, watchWait)
		if ctx.Err() != nil {
			return
		}
		if gap := watchMinGap - time.Since(began); gap > 0 && !w.out.down() {
			if !sleep(ctx, gap) {
				return
			}
		}
	}
}

// poll makes one query (blocking up to wait when an index is known) and
// applies its result.
func (w *QueueCountWatcher) poll(ctx context.Context, wait time.Duration) {
	q := &api.QueryOptions{WaitIndex: w.index, WaitTime: wait}
	pair, meta, err := w.c.api.KV().Get(w.c.QueueCountKey(), q.WithContext(ctx))
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return // stopping, not an outage
		}
		w.out.fail(w.log, "consul unreachable; keeping the queue count", err, slog.Int("n", w.Count()))
		// The agent may come back with a fresh, lower index: start over.
		w.index = 0
		return
	}
	w.out.ok(w.log, "consul reachable again", slog.Int("n", w.Count()))

	switch {
	case meta.LastIndex < w.index:
		w.index = 0 // index went backwards (agent restored or restarted): start over
	case meta.LastIndex == 0:
		w.index = 1
	default:
		w.index = meta.LastIndex
	}

	if pair == nil {
		w.set(w.def, "queue count key absent; using the default")
		return
	}
	n, err := ParseQueueCount(pair.Value)
	if err != nil {
		if pair.ModifyIndex != w.badIndex {
			w.badIndex = pair.ModifyIndex
			w.log.Warn("ignoring bad queue count; keeping the last good one",
				slog.Int("n", w.Count()), slog.Any("err", err), slog.Uint64("modify_index", pair.ModifyIndex))
		}
		return
	}
	w.set(n, "queue count changed")
}

// set stores n and, if it changed, logs msg and notifies Changes.
func (w *QueueCountWatcher) set(n int, msg string) {
	old := int(w.n.Swap(int64(n)))
	if old == n || w.starting {
		return
	}
	w.log.Info(msg, slog.Int("from", old), slog.Int("to", n))
	select { // latest wins: drop an unread older value
	case <-w.changes:
	default:
	}
	select {
	case w.changes <- n:
	default:
	}
}

// sleep waits d or until ctx ends; it reports false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
