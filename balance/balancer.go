package balance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/queue"
)

// Leaser is the part of the queue index the balancer uses.
type Leaser interface {
	Acquire(ctx context.Context, q int, ttl time.Duration) (*queue.Lease, bool, error)
	Renew(ctx context.Context, l *queue.Lease, ttl time.Duration) error
	Release(ctx context.Context, l *queue.Lease) error
}

// Defaults of Config. A killed worker's queues are free again within one
// lease; the renewal period leaves a holder three tries before its lease
// can expire, so a Redis hiccup or a GC pause of up to 750 ms costs
// nothing, and a longer one only hands the queue over (the token fences
// the old holder, Held.Valid keeps it from publishing).
const (
	DefaultLease      = time.Second
	DefaultRenewEvery = 250 * time.Millisecond
)

// Config configures a Balancer. Zero values mean the defaults.
type Config struct {
	Prefix     string        // Redis key prefix; the counter is <prefix>:balance:counter; default "couponpush"
	Lease      time.Duration // lease time; default DefaultLease
	RenewEvery time.Duration // renewal period, < Lease; default DefaultRenewEvery
	// Logger receives lost leases and failed renewals; nil discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "couponpush"
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.RenewEvery == 0 {
		c.RenewEvery = DefaultRenewEvery
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c (defaults applied first), joined.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.RenewEvery >= c.Lease || c.RenewEvery <= 0 {
		return fmt.Errorf("balance: renew period %v must be in (0, lease %v)", c.RenewEvery, c.Lease)
	}
	return nil
}

// Balancer picks queues and holds their leases.
type Balancer struct {
	rdb     redis.UniversalClient
	leases  Leaser
	counter string
	lease   time.Duration
	renew   time.Duration
	log     *slog.Logger
}

// New returns a Balancer; rdb holds the shared counter.
func New(rdb redis.UniversalClient, leases Leaser, cfg Config) (*Balancer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Balancer{rdb: rdb, leases: leases, counter: cfg.Prefix + ":balance:counter",
		lease: cfg.Lease, renew: cfg.RenewEvery, log: cfg.Logger}, nil
}

// Pick tries the due queues starting at INCR mod len(due) and returns the
// lease of the first one it gets, or nil when every one is held.
func (b *Balancer) Pick(ctx context.Context, due []int) (*queue.Lease, error) {
	if len(due) == 0 {
		return nil, nil
	}
	n, err := b.rdb.Incr(ctx, b.counter).Result()
	if err != nil {
		return nil, fmt.Errorf("balance pick: %w", err)
	}
	start := int(uint64(n) % uint64(len(due)))
	for i := range due {
		q := due[(start+i)%len(due)]
		l, ok, err := b.leases.Acquire(ctx, q, b.lease)
		if err != nil {
			return nil, fmt.Errorf("balance pick: %w", err)
		}
		if ok {
			return l, nil
		}
	}
	return nil, nil
}

// Held is a lease that Hold keeps renewed. Lost is closed when the lease
// can no longer be vouched for: another worker took it, or renewals failed
// for so long that it may have expired. The holder must stop working the
// queue when Lost closes; its scripts would be refused anyway (the token
// fences them).
//
// Publishing to nsqd is outside Redis, so no token fences it: before it
// publishes, the holder asks Valid, which answers by this process's
// monotonic clock whether the lease still has time left. A process that
// was stopped (SIGSTOP, a long GC pause, a stalled VM) past its lease finds
// Valid false when it runs again, before its renewal goroutine has even
// noticed, and publishes nothing; the next holder republishes the same
// pushes. What no check can close is a stall between Valid and the write
// itself: then a push reaches nsqd twice, under the same push_id.
type Held struct {
	Lease *queue.Lease
	Lost  <-chan struct{}

	base  time.Time    // monotonic origin of valid
	valid atomic.Int64 // the lease's end as known here, ns after base
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	b     *Balancer
	ctx   context.Context
}

// Valid reports whether Lost is not closed and the lease has at least one
// renewal period left by the last renewal this process saw answered (so
// that a publish begun now ends, at its usual speed, while the lease holds).
func (h *Held) Valid() bool {
	select {
	case <-h.Lost:
		return false
	default:
	}
	return time.Since(h.base)+h.b.renew < time.Duration(h.valid.Load())
}

// Release stops renewing and gives the lease back, so the next pick need
// not wait out the lease; it is idempotent.
func (h *Held) Release() {
	h.once.Do(func() {
		close(h.stop)
		h.wg.Wait()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), time.Second)
		defer cancel()
		if err := h.b.leases.Release(rctx, h.Lease); err != nil && !errors.Is(err, queue.ErrLeaseLost) {
			h.b.log.Warn("lease release failed", "queue", h.Lease.Queue, "err", err)
		}
	})
}

// Hold keeps l renewed every RenewEvery until Release, each renewal bounded
// by the time the lease has left (a hung Redis cannot hold a renewal past
// the lease's end). l must have been acquired just before.
func (b *Balancer) Hold(ctx context.Context, l *queue.Lease) *Held {
	lost := make(chan struct{})
	h := &Held{Lease: l, Lost: lost, base: time.Now(), stop: make(chan struct{}), b: b, ctx: ctx}
	h.valid.Store(int64(b.lease))
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(b.renew)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-ctx.Done():
				close(lost)
				return
			case <-t.C:
			}
			sent := time.Since(h.base)
			left := time.Duration(h.valid.Load()) - sent
			if left <= 0 {
				b.log.Warn("lease expired before it could be renewed", "queue", l.Queue)
				close(lost)
				return
			}
			rctx, cancel := context.WithTimeout(ctx, left)
			err := b.leases.Renew(rctx, l, b.lease)
			cancel()
			switch {
			case err == nil:
				h.valid.Store(int64(sent + b.lease))
			case errors.Is(err, queue.ErrLeaseLost):
				b.log.Warn("lease lost", "queue", l.Queue)
				close(lost)
				return
			default:
				b.log.Warn("lease renewal failed", "queue", l.Queue, "err", err)
				if time.Duration(h.valid.Load())-time.Since(h.base) < b.renew {
					close(lost)
					return
				}
			}
		}
	}()
	return h
}
