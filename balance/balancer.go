package balance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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

// Config configures a Balancer. Zero values mean the defaults.
type Config struct {
	Prefix     string        // Redis key prefix; the counter is <prefix>:balance:counter; default "couponpush"
	Lease      time.Duration // lease time; default 5 s
	RenewEvery time.Duration // renewal period, < Lease; default 1.5 s
	// Logger receives lost leases and failed renewals; nil discards.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "couponpush"
	}
	if c.Lease == 0 {
		c.Lease = 5 * time.Second
	}
	if c.RenewEvery == 0 {
		c.RenewEvery = 1500 * time.Millisecond
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

// Hold keeps l renewed until release is called. lost is closed when the
// lease can no longer be vouched for: another worker took it, or renewals
// failed for so long that it may have expired. The holder must stop working
// the queue when lost closes; its scripts would be refused anyway.
// release stops renewing and gives the lease back; it is idempotent.
func (b *Balancer) Hold(ctx context.Context, l *queue.Lease) (lost <-chan struct{}, release func()) {
	lostc := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(b.renew)
		defer t.Stop()
		valid := time.Now().Add(b.lease)
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				close(lostc)
				return
			case <-t.C:
			}
			sent := time.Now()
			err := b.leases.Renew(ctx, l, b.lease)
			switch {
			case err == nil:
				valid = sent.Add(b.lease)
			case errors.Is(err, queue.ErrLeaseLost):
				b.log.Warn("lease lost", "queue", l.Queue)
				close(lostc)
				return
			default:
				b.log.Warn("lease renewal failed", "queue", l.Queue, "err", err)
				if time.Until(valid) < b.renew {
					close(lostc)
					return
				}
			}
		}
	}()
	var once sync.Once
	return lostc, func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
			// Give the queue back so the next pick need not wait out the lease.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			if err := b.leases.Release(rctx, l); err != nil && !errors.Is(err, queue.ErrLeaseLost) {
				b.log.Warn("lease release failed", "queue", l.Queue, "err", err)
			}
		})
	}
}
