// Package resize changes the queue count N live. Operators set N in Consul
// (scheduler-admin queues set M); every worker follows it here:
//
//   - Each worker watches the layout recorded in Redis and hands it to its
//     queue.Router (writes) and scheduler (which queues to visit).
//   - One worker at a time, under the Consul lock "resize", is the
//     coordinator: it records the first layout, and when N in Consul differs
//     from the recorded layout it moves users queue by queue
//     (queue.Client.BeginMove, MoveQueue, FinishMove), then retires the
//     queues a smaller N left behind once their flights and marks drained.
//
// Nothing stops while users move: schedulers keep popping old and new
// queues, and writes follow users (see queue.Router). A coordinator that
// dies half-way leaves the move recorded in Redis; the next one to take the
// lock finishes it. When N changes again during a move, the running move
// finishes first and the next one goes straight to the latest N.
package resize

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"couponpush/queue"
)

// Locker takes a cluster-wide lock (cluster.Client.Lock is one): lost closes
// when the lock is lost; release frees it.
type Locker func(ctx context.Context, name string) (release func(), lost <-chan struct{}, err error)

// Config configures a Coordinator. Target, Lock and Router are required.
type Config struct {
	// Target is the queue count operators asked for (the Consul watcher's
	// last good value).
	Target func() int
	// Changes, if set, wakes the coordinator when Target changes.
	Changes <-chan int
	// Lock takes the coordinator's lock.
	Lock Locker
	// Router is told every layout read, so writes and Span follow it.
	Router *queue.Router
	// Lead, when false, only watches the layout: the worker never
	// coordinates (it runs no scheduler).
	Lead bool
	// Interval between looks at the layout; default 250 ms.
	Interval time.Duration
	// Batch is how many users one move script takes; default 500.
	Batch int
	// Logger receives moves and failed steps; nil discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = 250 * time.Millisecond
	}
	if c.Batch == 0 {
		c.Batch = 500
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c (defaults applied first), joined.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if c.Target == nil {
		errs = append(errs, errors.New("resize: Target is required"))
	}
	if c.Lock == nil && c.Lead {
		errs = append(errs, errors.New("resize: Lock is required to lead"))
	}
	if c.Router == nil {
		errs = append(errs, errors.New("resize: Router is required"))
	}
	if c.Interval < 0 || c.Batch < 0 {
		errs = append(errs, errors.New("resize: Interval and Batch must not be negative"))
	}
	return errors.Join(errs...)
}

// Stats are the coordinator's counters.
type Stats struct {
	Moved    atomic.Int64 // users moved by this process
	Moves    atomic.Int64 // moves this process finished
	Leading  atomic.Bool  // holds the lock now
	MoveErrs atomic.Int64 // failed steps (retried)
	// Moving is true while this process drives a move of N; QueuesLeft is
	// then how many old queues it has not yet moved out (0 otherwise).
	Moving     atomic.Bool
	QueuesLeft atomic.Int64
}

// Coordinator follows and, when it holds the lock, drives the layout.
type Coordinator struct {
	idx   *queue.Client
	cfg   Config
	log   *slog.Logger
	stats Stats
}

// New returns a coordinator; Run runs it.
func New(idx *queue.Client, cfg Config) (*Coordinator, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Coordinator{idx: idx, cfg: cfg, log: cfg.Logger.With(slog.String("part", "resize"))}, nil
}

// Stats returns the live counters.
func (c *Coordinator) Stats() *Stats { return &c.stats }

// Run watches the layout until ctx ends and, with Lead, competes for the
// lock and coordinates while it holds it.
func (c *Coordinator) Run(ctx context.Context) {
	if !c.cfg.Lead {
		c.watch(ctx)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.watch(ctx)
	}()
	defer func() { <-done }()
	backoff := c.cfg.Interval
	for ctx.Err() == nil {
		release, lost, err := c.cfg.Lock(ctx, "resize")
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("resize lock unavailable; retrying", slog.Any("err", err))
			}
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = c.cfg.Interval
		c.stats.Leading.Store(true)
		c.lead(ctx, lost)
		c.stats.Leading.Store(false)
		release()
	}
}

// watch hands the recorded layout to the router every Interval.
func (c *Coordinator) watch(ctx context.Context) {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := c.cfg.Router.Refresh(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("reading the queue layout", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lead steps until the lock is lost or ctx ends.
func (c *Coordinator) lead(ctx context.Context, lost <-chan struct{}) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-lost:
			cancel()
		case <-sctx.Done():
		}
	}()
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		if err := c.Step(sctx); err != nil && sctx.Err() == nil {
			c.stats.MoveErrs.Add(1)
			c.log.Error("queue layout step failed; retrying", slog.Any("err", err))
		}
		select {
		case <-sctx.Done():
			return
		case <-c.cfg.Changes:
		case <-t.C:
		}
	}
}

// Step brings the recorded layout one step towards Target: records the
// first layout, finishes a running move, begins a move to a new N, or
// retires drained queues. Call it only while holding the lock (Run does).
func (c *Coordinator) Step(ctx context.Context) error {
	st, ok, err := c.idx.LayoutStatus(ctx)
	if err != nil {
		return err
	}
	if !ok {
		st, err = c.idx.InitLayout(ctx, c.cfg.Target())
		if err != nil {
			return err
		}
		c.log.Info("recorded the queue layout", slog.Int("queues", st.To), slog.Int64("generation", st.Gen))
		c.cfg.Router.Observe(st.Layout)
		return nil
	}
	l := st.Layout
	if l.Stable() {
		target := c.cfg.Target()
		if target == l.To {
			if retired, ok, err := c.idx.Retire(ctx, l); err != nil {
				return err
			} else if ok {
				c.log.Info("retired drained queues", slog.Int("queues", retired.To))
				c.cfg.Router.Observe(retired)
			}
			return nil
		}
		if l, err = c.idx.BeginMove(ctx, l, target); err != nil {
			return err
		}
		c.log.Info("moving users to a new queue count", slog.Int("from", l.From), slog.Int("to", l.To), slog.Int64("generation", l.Gen))
		c.cfg.Router.Observe(l)
	}
	return c.finish(ctx, l)
}

// finish moves every old queue's users and ends the move.
func (c *Coordinator) finish(ctx context.Context, l queue.Layout) error {
	began := time.Now()
	moved := 0
	c.stats.Moving.Store(true)
	defer func() {
		c.stats.Moving.Store(false)
		c.stats.QueuesLeft.Store(0)
	}()
	for q := 0; q < l.From; q++ {
		c.stats.QueuesLeft.Store(int64(l.From - q))
		n, err := c.idx.MoveQueue(ctx, l, q, c.cfg.Batch)
		moved += n
		c.stats.Moved.Add(int64(n))
		if err != nil {
			return fmt.Errorf("move %s: %w", l, err)
		}
	}
	c.stats.QueuesLeft.Store(0)
	done, err := c.idx.FinishMove(ctx, l)
	if err != nil {
		return err
	}
	c.stats.Moves.Add(1)
	c.cfg.Router.Observe(done)
	c.log.Info("queue count changed", slog.Int("from", l.From), slog.Int("to", l.To),
		slog.Int("users_moved", moved), slog.Duration("took", time.Since(began)))
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
