package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	cpconfig "couponpush/config"
	"couponpush/internal/engine"
	"couponpush/push"
)

// config is the consumer's one configuration: flags, which default to the
// environment, which defaults to the values below.
type config struct {
	// NSQD is nsqd's TCP address: -nsqd, env COUPONPUSH_NSQD_TCP,
	// default 127.0.0.1:4150.
	NSQD string
	// Topic is the push topic: -topic, env COUPONPUSH_TOPIC, default
	// coupon_push.
	Topic string
	// Channel is the NSQ channel read: -channel, default message_center.
	Channel string
	// Quiet drops the per-push lines, keeping the summaries: -quiet.
	Quiet bool
	// Every is how often the summary is checked, and printed if it
	// changed: -every, default 1s.
	Every time.Duration
	// Engines holds nsqd's TLS and auth secret: the worker's -nsqd-tls*
	// and -nsqd-auth-secret* flags and environment variables.
	Engines cpconfig.Engines
}

// parseConfig reads args over the environment given by getenv and
// validates the result. -h prints usage to stderr and returns flag.ErrHelp.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	or := func(env, def string) string {
		if v := getenv(env); v != "" {
			return v
		}
		return def
	}
	var c config
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.NSQD, "nsqd", or("COUPONPUSH_NSQD_TCP", "127.0.0.1:4150"), "nsqd TCP address (env COUPONPUSH_NSQD_TCP)")
	fs.StringVar(&c.Topic, "topic", or("COUPONPUSH_TOPIC", "coupon_push"), "NSQ topic of the pushes (env COUPONPUSH_TOPIC)")
	fs.StringVar(&c.Channel, "channel", "message_center", "NSQ channel to read")
	fs.BoolVar(&c.Quiet, "quiet", false, "print only the summary lines, not one line per push")
	fs.DurationVar(&c.Every, "every", time.Second, "how often the summary line is checked; it is printed when it changed")
	loadEngines := cpconfig.EngineFlags(fs, getenv, cpconfig.EngineNSQD)
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if c.Engines, err = loadEngines(); err != nil {
		return config{}, err
	}
	return c, c.Validate()
}

// Validate reports the first unusable setting.
func (c config) Validate() error {
	if c.Every <= 0 {
		return fmt.Errorf("-every %s is not positive", c.Every)
	}
	cc, err := c.consumer(nil, nil)
	if err != nil {
		return err
	}
	return cc.Validate()
}

// consumer is the push.ConsumerConfig for c.
func (c config) consumer(handle func(push.Push, time.Duration), logger *slog.Logger) (push.ConsumerConfig, error) {
	auth, err := engine.NSQ(c.Engines)
	if err != nil {
		return push.ConsumerConfig{}, err
	}
	return push.ConsumerConfig{NSQDAddr: c.NSQD, Topic: c.Topic, Channel: c.Channel, NSQ: auth, Handle: handle, Logger: logger}, nil
}

// run consumes until ctx is done, then stops the consumer (letting the
// messages already received finish), prints a last summary and returns.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	var (
		mu   sync.Mutex // guards out and late
		out  = bufio.NewWriterSize(stdout, 64<<10)
		late = newLateness()
		line []byte
	)
	handle := func(p push.Push, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		late.record(d)
		if !cfg.Quiet {
			line = appendPushLine(line[:0], p, d)
			_, _ = out.Write(line)
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cc, err := cfg.consumer(handle, logger)
	if err != nil {
		return err
	}
	c, err := push.NewConsumer(cc)
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	// summary prints the summary line when it differs from the last one
	// printed (the first and, with final, the last are always printed), so
	// an idle consumer does not repeat itself every second.
	var last string
	summary := func(final bool) error {
		mu.Lock()
		defer mu.Unlock()
		s := c.Stats()
		line := fmt.Sprintf("summary pushes=%d duplicates=%d malformed=%d batches=%d late_p50=%s late_p99=%s late_max=%s\n",
			s.Pushes, s.Duplicates, s.Malformed, s.Batches,
			ms(late.quantile(0.50)), ms(late.quantile(0.99)), ms(late.max))
		if line == last && !final {
			return out.Flush()
		}
		last = line
		_, _ = out.WriteString(line)
		return out.Flush()
	}
	ticker := time.NewTicker(cfg.Every)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			c.Stop()
			return summary(true)
		case <-ticker.C:
			if err := summary(false); err != nil {
				c.Stop()
				return fmt.Errorf("write summary: %w", err)
			}
		}
	}
}

// appendPushLine appends "push_id user_id due_at late=1.2ms items=2\n".
func appendPushLine(dst []byte, p push.Push, late time.Duration) []byte {
	dst = append(dst, p.ID...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, p.UserID, 10)
	dst = append(dst, ' ')
	dst = p.DueAt.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	dst = append(dst, " late="...)
	dst = append(dst, ms(late)...)
	dst = append(dst, " items="...)
	dst = strconv.AppendInt(dst, int64(len(p.Items)), 10)
	return append(dst, '\n')
}

// ms formats d in milliseconds with one decimal: "12.3ms".
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
}

// Bounds of the lateness histogram: one bucket per millisecond from
// -lateLow to +lateHigh; values outside count in the end buckets (the
// exact maximum is kept apart).
const (
	lateLow  = 10 * time.Second
	lateHigh = 60 * time.Second
)

// lateness is a histogram of arrival - due_at with 1 ms buckets: bounded
// memory (about 560 KB) however long the consumer runs.
type lateness struct {
	counts []int64
	n      int64
	max    time.Duration
}

func newLateness() *lateness {
	return &lateness{counts: make([]int64, (lateLow+lateHigh)/time.Millisecond)}
}

// record adds one value.
func (l *lateness) record(d time.Duration) {
	if l.n == 0 || d > l.max {
		l.max = d
	}
	l.n++
	i := 0
	switch {
	case d < -lateLow:
	case d >= lateHigh:
		i = len(l.counts) - 1
	default:
		i = int((d + lateLow) / time.Millisecond)
	}
	l.counts[i]++
}

// quantile returns the upper edge of the bucket holding the q-quantile
// (never above the maximum seen; the maximum itself for the overflow
// bucket), or 0 with no values.
func (l *lateness) quantile(q float64) time.Duration {
	if l.n == 0 {
		return 0
	}
	rank := max(int64(q*float64(l.n)+0.999999), 1)
	var seen int64
	for i, c := range l.counts {
		seen += c
		if seen >= rank && i < len(l.counts)-1 {
			return min(time.Duration(i+1)*time.Millisecond-lateLow, l.max)
		}
	}
	return l.max
}
