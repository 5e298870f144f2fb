package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsqio/go-nsq"
)

// Defaults of ConsumerConfig.
const (
	// DefaultDedupCapacity is how many push ids a Consumer remembers.
	DefaultDedupCapacity = 1_000_000
	// DefaultMaxInFlight is how many messages nsqd may send ahead.
	DefaultMaxInFlight = 64
	// DefaultReconnectInterval is the pause between attempts to reconnect
	// to an nsqd that went away.
	DefaultReconnectInterval = time.Second
)

// ConsumerConfig configures a Consumer. Zero values mean the defaults.
type ConsumerConfig struct {
	// NSQDAddr is nsqd's TCP address (host:port). Required.
	NSQDAddr string
	// Topic is the NSQ topic to read. Required.
	Topic string
	// Channel is the NSQ channel to read, for example "message_center".
	// Required; consumers sharing a channel share its messages.
	Channel string
	// DedupCapacity is how many push ids are remembered to drop repeats;
	// the oldest is forgotten first, so a repeat arriving after that many
	// newer pushes is handled again. Memory is bounded at about 56 bytes per
	// id whatever the id's length (ids are kept as 16-byte digests): ~56 MB
	// for the default DefaultDedupCapacity. 0 means DefaultDedupCapacity.
	DedupCapacity int
	// MaxInFlight is how many messages nsqd may send before they are
	// finished. 0 means DefaultMaxInFlight.
	MaxInFlight int
	// ReconnectInterval is the pause between attempts to reconnect after
	// nsqd went away. 0 means DefaultReconnectInterval.
	ReconnectInterval time.Duration
	// Handle is called once per new push id, from one goroutine at a time,
	// with late = arrival - DueAt, arrival being Now when the push's batch
	// reached the handler (negative if the push came early). Repeats are
	// dropped and counted. nil only counts.
	Handle func(p Push, late time.Duration)
	// Now is the clock for arrival times. nil means time.Now.
	Now func() time.Time
	// NSQ holds the TLS and auth settings of the connection.
	NSQ NSQAuth
	// Logger receives malformed messages (warn) and go-nsq's own lines
	// (debug). nil discards.
	Logger *slog.Logger
}

// Validate reports every field of c that is unusable, joined, with zero
// values taken as their defaults.
func (c ConsumerConfig) Validate() error {
	errs := []error{validateNSQ(c.NSQDAddr, c.Topic)}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !nsq.IsValidChannelName(c.Channel) {
		bad("push: Channel %q is not a valid NSQ channel name", c.Channel)
	}
	if c.DedupCapacity < 0 {
		bad("push: DedupCapacity %d is negative", c.DedupCapacity)
	}
	if c.MaxInFlight < 0 {
		bad("push: MaxInFlight %d is negative", c.MaxInFlight)
	}
	switch {
	case c.ReconnectInterval < 0:
		bad("push: ReconnectInterval %s is negative", c.ReconnectInterval)
	case c.ReconnectInterval != 0 && c.ReconnectInterval < 10*time.Millisecond:
		bad("push: ReconnectInterval %s is below 10ms", c.ReconnectInterval)
	}
	return errors.Join(errs...)
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c ConsumerConfig) WithDefaults() ConsumerConfig {
	if c.DedupCapacity == 0 {
		c.DedupCapacity = DefaultDedupCapacity
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.ReconnectInterval == 0 {
		c.ReconnectInterval = DefaultReconnectInterval
	}
	if c.Handle == nil {
		c.Handle = func(Push, time.Duration) {}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// ConsumerStats counts what a Consumer has seen since it started.
type ConsumerStats struct {
	Batches    int64 // well-formed messages handled
	Pushes     int64 // new pushes handed to Handle
	Duplicates int64 // pushes dropped because their id was seen before
	Malformed  int64 // messages that failed DecodeBatch (logged and finished)
}

// Consumer is the reference consumer of the push topic: it decodes each
// batch, drops pushes whose id it has seen recently and hands the others to
// a callback. It shows what the message center must do with the stream.
type Consumer struct {
	cfg   ConsumerConfig
	log   *slog.Logger
	dedup *dedup // used only by the single handler goroutine

	batches, pushes, duplicates, malformed atomic.Int64

	mu       sync.Mutex
	nsq      *nsq.Consumer // set by Start
	stopped  bool
	stopping chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// NewConsumer validates cfg and returns a Consumer; Start connects it.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Consumer{
		cfg:      cfg,
		log:      cfg.Logger.With("nsqd", cfg.NSQDAddr, "topic", cfg.Topic, "channel", cfg.Channel),
		dedup:    newDedup(cfg.DedupCapacity),
		stopping: make(chan struct{}),
	}, nil
}

// Start connects to nsqd and starts handling messages. It returns an error
// if nsqd cannot be reached now; once connected, the Consumer reconnects on
// its own after nsqd goes away. The Consumer stops when ctx is done or Stop
// is called. Start may be called once.
func (c *Consumer) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopped:
		return ErrStopped
	case c.nsq != nil:
		return errors.New("push: consumer already started")
	}
	nc := nsq.NewConfig()
	nc.DialTimeout = nsqDialTimeout
	nc.ReadTimeout = nsqReadTimeout
	nc.WriteTimeout = nsqWriteTimeout
	c.cfg.NSQ.apply(nc, c.cfg.NSQDAddr)
	nc.MaxInFlight = c.cfg.MaxInFlight
	nc.LookupdPollInterval = c.cfg.ReconnectInterval // without nsqlookupd: the reconnect pause
	nc.LookupdPollJitter = 0
	// nsqd buffers what it sends a consumer and flushes it every 250 ms by
	// default: a reminder would wait there. A message is a whole batch of
	// pushes, so writing each at once costs little. A message center
	// should do the same (output_buffer_size -1 in IDENTIFY).
	nc.OutputBufferSize = -1
	consumer, err := nsq.NewConsumer(c.cfg.Topic, c.cfg.Channel, nc)
	if err != nil {
		return fmt.Errorf("push: new nsq consumer: %w", err)
	}
	consumer.SetLogger(nsqLog(c.cfg.Logger))
	consumer.AddHandler(nsq.HandlerFunc(c.handleMessage)) // one goroutine: Handle is never concurrent
	if err := consumer.ConnectToNSQD(c.cfg.NSQDAddr); err != nil {
		consumer.Stop()
		<-consumer.StopChan
		return fmt.Errorf("push: consumer connect to nsqd %s: %w", c.cfg.NSQDAddr, err)
	}
	c.nsq = consumer
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-ctx.Done():
			c.shutdown()
		case <-c.stopping:
		}
	}()
	return nil
}

// handleMessage handles one NSQ message. It never asks for a requeue: a
// malformed message is logged, counted and finished, since it would be
// malformed again.
func (c *Consumer) handleMessage(m *nsq.Message) error {
	arrival := c.cfg.Now()
	b, err := DecodeBatch(m.Body)
	if err != nil {
		c.malformed.Add(1)
		c.log.Warn("dropping malformed message", "nsq_id", string(m.ID[:]), "bytes", len(m.Body), "error", err)
		return nil
	}
	c.batches.Add(1)
	for _, p := range b.Pushes {
		if !c.dedup.add(p.ID) {
			c.duplicates.Add(1)
			continue
		}
		c.pushes.Add(1)
		c.cfg.Handle(p, arrival.Sub(p.DueAt))
	}
	return nil
}

// Stats returns the counters so far; safe to call at any time.
func (c *Consumer) Stats() ConsumerStats {
	return ConsumerStats{
		Batches:    c.batches.Load(),
		Pushes:     c.pushes.Load(),
		Duplicates: c.duplicates.Load(),
		Malformed:  c.malformed.Load(),
	}
}

// Stop stops taking messages, waits for the handler to finish the messages
// already received, and disconnects. It is idempotent and safe to call
// concurrently, before or without Start.
func (c *Consumer) Stop() {
	c.shutdown()
	c.wg.Wait()
}

// shutdown is Stop without waiting for the ctx watcher (which calls it).
func (c *Consumer) shutdown() {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.stopped = true
		consumer := c.nsq
		c.mu.Unlock()
		close(c.stopping)
		if consumer != nil {
			consumer.Stop()
			<-consumer.StopChan
		}
	})
}
