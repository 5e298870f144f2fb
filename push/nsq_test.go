package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"
	"go.uber.org/goleak"

	"couponpush/internal/enginetest"
)

// Integration tests against a real nsqd. They do not call t.Parallel: each
// checks with goleak that nothing it started outlives it, which only holds
// when no other test runs beside it.

func TestMain(m *testing.M) { enginetest.Main(m) }

// noLeaks checks, after every other cleanup of t, that t left no goroutine.
func noLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// waitFor polls cond every few milliseconds until it holds, failing the
// test with what after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	enginetest.Eventually(t, what, timeout, cond)
}

// received collects what a Consumer hands to Handle.
type received struct {
	mu    sync.Mutex
	count map[string]int // push id → Handle calls
	push  map[string]Push
	late  map[string]time.Duration
}

func newReceived() *received {
	return &received{count: map[string]int{}, push: map[string]Push{}, late: map[string]time.Duration{}}
}

func (r *received) handle(p Push, late time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count[p.ID]++
	r.push[p.ID] = p
	r.late[p.ID] = late
}

// check fails t unless every push in want was handled exactly once, as
// sent, and nothing else was.
func (r *received) check(t *testing.T, want []Push) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.count) != len(want) {
		t.Errorf("handled %d distinct pushes, want %d", len(r.count), len(want))
	}
	for _, w := range want {
		switch n := r.count[w.ID]; {
		case n != 1:
			t.Errorf("push %s handled %d times, want once", w.ID, n)
		case !reflect.DeepEqual(r.push[w.ID], wireBatchOf(Batch{Pushes: []Push{w}}).Pushes[0]):
			t.Errorf("push %s arrived as %+v, want %+v", w.ID, r.push[w.ID], w)
		}
	}
}

// startConsumer starts a Consumer on addr and topic, stopped at cleanup.
func startConsumer(t *testing.T, cfg ConsumerConfig) *Consumer {
	t.Helper()
	if cfg.Channel == "" {
		cfg.Channel = "message_center"
	}
	if cfg.ReconnectInterval == 0 {
		cfg.ReconnectInterval = 20 * time.Millisecond
	}
	c, err := NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// startPublisher returns a Publisher, stopped at cleanup.
func startPublisher(t *testing.T, cfg PublisherConfig) *Publisher {
	t.Helper()
	p, err := NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// variedPushes returns n pushes for distinct users with 1-3 items each.
func variedPushes(n int) []Push {
	out := make([]Push, n)
	for i := range out {
		items := make([]Item, 1+i%3)
		for j := range items {
			at := grab.Add(-time.Minute + time.Duration(j)*1500*time.Millisecond)
			items[j] = Item{TemplateID: int64(100 + j), PushAt: at, GrabStart: at.Add(time.Minute)}
		}
		out[i] = NewPush(int64(1000+i), items)
	}
	return out
}

// channelStats is the part of nsqd's /stats this file reads.
type channelStats struct {
	Depth         int64  `json:"depth"`
	InFlightCount int    `json:"in_flight_count"`
	MessageCount  uint64 `json:"message_count"`
	RequeueCount  uint64 `json:"requeue_count"`
	TimeoutCount  uint64 `json:"timeout_count"`
}

// statsOf reads one channel's counters from nsqd's HTTP API.
func statsOf(t *testing.T, httpAddr, topic, channel string) channelStats {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true} // no idle goroutine for goleak
	defer tr.CloseIdleConnections()
	url := fmt.Sprintf("http://%s/stats?format=json&topic=%s&channel=%s", httpAddr, topic, channel)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Topics []struct {
			Name     string `json:"topic_name"`
			Channels []struct {
				Name string `json:"channel_name"`
				channelStats
			} `json:"channels"`
		} `json:"topics"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode %s: %v", url, err)
	}
	for _, tp := range body.Topics {
		for _, ch := range tp.Channels {
			if tp.Name == topic && ch.Name == channel {
				return ch.channelStats
			}
		}
	}
	t.Fatalf("nsqd %s has no channel %s/%s", httpAddr, topic, channel)
	return channelStats{}
}

func TestPublishConsumeRoundTrip(t *testing.T) {
	noLeaks(t)
	tcp, web := enginetest.NSQD(t)
	topic := enginetest.Prefix(t)
	arrival := grab.Add(-59 * time.Second)
	got := newReceived()
	c := startConsumer(t, ConsumerConfig{NSQDAddr: tcp, Topic: topic, Handle: got.handle, Now: func() time.Time { return arrival }})
	// Small limits so the run has many batches and many MPUBs.
	cfg := PublisherConfig{NSQDAddr: tcp, Topic: topic, MaxMessageBytes: 16 << 10, MaxBodyBytes: 40 << 10, MaxPushesPerBatch: 50}
	p := startPublisher(t, cfg)
	pushes := variedPushes(3000)
	msgs, _, err := p.encode(pushes)
	if err != nil {
		t.Fatal(err)
	}
	if groups := group(msgs, cfg.MaxBodyBytes); len(msgs) < 60 || len(groups) < 10 {
		t.Fatalf("limits too loose for this test: %d batches in %d MPUBs", len(msgs), len(groups))
	}

	if err := p.Publish(t.Context(), pushes); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every push", func() bool { return c.Stats().Pushes >= int64(len(pushes)) })
	waitFor(t, 10*time.Second, "every message finished", func() bool {
		s := statsOf(t, web, topic, "message_center")
		return s.Depth == 0 && s.InFlightCount == 0
	})

	got.check(t, pushes)
	if s, want := c.Stats(), (ConsumerStats{Batches: int64(len(msgs)), Pushes: int64(len(pushes))}); s != want {
		t.Errorf("stats %+v, want %+v", s, want)
	}
	if s := statsOf(t, web, topic, "message_center"); s.MessageCount != uint64(len(msgs)) || s.RequeueCount != 0 || s.TimeoutCount != 0 {
		t.Errorf("nsqd channel stats %+v, want %d messages, no requeue or timeout", s, len(msgs))
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	for _, w := range pushes {
		if want := arrival.Sub(w.DueAt); got.late[w.ID] != want {
			t.Fatalf("push %s late %s, want %s", w.ID, got.late[w.ID], want)
		}
	}
}

func TestConsumerDropsDuplicates(t *testing.T) {
	noLeaks(t)
	tcp, _ := enginetest.NSQD(t)
	topic := enginetest.Prefix(t)
	got := newReceived()
	c := startConsumer(t, ConsumerConfig{NSQDAddr: tcp, Topic: topic, Handle: got.handle})
	p := startPublisher(t, PublisherConfig{NSQDAddr: tcp, Topic: topic, MaxPushesPerBatch: 7})
	pushes := variedPushes(100)

	// The same pushes twice (a redelivery), then one push twice in one batch.
	if err := p.Publish(t.Context(), pushes); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(t.Context(), pushes); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(t.Context(), []Push{pushes[0], pushes[0]}); err != nil {
		t.Fatal(err)
	}
	sent := int64(2*len(pushes) + 2)
	waitFor(t, 30*time.Second, "every push", func() bool { s := c.Stats(); return s.Pushes+s.Duplicates >= sent })

	got.check(t, pushes)
	if s := c.Stats(); s.Pushes != int64(len(pushes)) || s.Duplicates != sent-int64(len(pushes)) || s.Malformed != 0 {
		t.Errorf("stats %+v, want %d pushes and %d duplicates", s, len(pushes), sent-int64(len(pushes)))
	}
}

func TestConsumerFinishesMalformed(t *testing.T) {
	noLeaks(t)
	tcp, web := enginetest.NSQD(t)
	topic := enginetest.Prefix(t)
	got := newReceived()
	c := startConsumer(t, ConsumerConfig{NSQDAddr: tcp, Topic: topic, Handle: got.handle})

	raw, err := nsq.NewProducer(tcp, nsq.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	raw.SetLogger(nil, nsq.LogLevelMax)
	defer raw.Stop()
	bad := [][]byte{[]byte("not json"), []byte(`{}`), []byte(`{"batch_id":"b","emitted_at":"2026-11-23T09:59:00Z","pushes":[]}`)}
	if err := raw.MultiPublish(topic, bad); err != nil {
		t.Fatal(err)
	}
	pushes := variedPushes(3)
	if err := startPublisher(t, PublisherConfig{NSQDAddr: tcp, Topic: topic}).Publish(t.Context(), pushes); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "all messages", func() bool { s := c.Stats(); return s.Malformed >= 3 && s.Pushes >= 3 })
	waitFor(t, 10*time.Second, "every message finished", func() bool {
		s := statsOf(t, web, topic, "message_center")
		return s.Depth == 0 && s.InFlightCount == 0
	})
	if s := statsOf(t, web, topic, "message_center"); s.RequeueCount != 0 || s.MessageCount != 4 {
		t.Errorf("nsqd channel stats %+v, want 4 messages and no requeue", s)
	}
	if s := c.Stats(); s != (ConsumerStats{Batches: 1, Pushes: 3, Malformed: 3}) {
		t.Errorf("stats %+v", s)
	}
	got.check(t, pushes)
}

// retryLog is a slog handler that counts the Publisher's retry records.
type retryLog struct{ retries atomic.Int64 }

func (r *retryLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (r *retryLog) WithAttrs([]slog.Attr) slog.Handler           { return r }
func (r *retryLog) WithGroup(string) slog.Handler                { return r }
func (r *retryLog) Handle(_ context.Context, rec slog.Record) error {
	if rec.Level == slog.LevelWarn && rec.Message == "nsqd did not accept batches, retrying" {
		r.retries.Add(1)
	}
	return nil
}

func TestPublishWaitsOutNSQDRestart(t *testing.T) {
	noLeaks(t)
	nsqd := enginetest.StartNSQD(t)
	topic := enginetest.Prefix(t)
	got := newReceived()
	c := startConsumer(t, ConsumerConfig{NSQDAddr: nsqd.Addr, Topic: topic, Handle: got.handle})
	log := &retryLog{}
	p := startPublisher(t, PublisherConfig{NSQDAddr: nsqd.Addr, Topic: topic, MaxPushesPerBatch: 20,
		RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, Logger: slog.New(log)})
	pushes := variedPushes(1000)
	before, during := pushes[:400], pushes[400:]

	// A first publish opens the connection that the outage then breaks.
	if err := p.Publish(t.Context(), before); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the first pushes", func() bool { return c.Stats().Pushes >= int64(len(before)) })

	nsqd.Stop(t)
	done := make(chan error, 1)
	go func() { done <- p.Publish(t.Context(), during) }()
	waitFor(t, 30*time.Second, "Publish to retry", func() bool { return log.retries.Load() >= 3 })
	select {
	case err := <-done:
		t.Fatalf("Publish returned %v while nsqd was down", err)
	default:
	}
	nsqd.Restart(t)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish after restart: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Publish did not return within 30s of the restart")
	}

	waitFor(t, 30*time.Second, "every push", func() bool { return c.Stats().Pushes >= int64(len(pushes)) })
	// A push handled just before the stop may come again (its FIN may not
	// have reached nsqd, which then kept it on disk): Handle must not see it.
	got.check(t, pushes)
	t.Logf("retries while down: %d; consumer %+v", log.retries.Load(), c.Stats())
}

func TestPublishSurvivesOutageMidStream(t *testing.T) {
	noLeaks(t)
	nsqd := enginetest.StartNSQD(t)
	topic := enginetest.Prefix(t)
	got := newReceived()
	var stopOnce sync.Once
	stopped := make(chan struct{})
	c := startConsumer(t, ConsumerConfig{NSQDAddr: nsqd.Addr, Topic: topic, Handle: func(p Push, late time.Duration) {
		got.handle(p, late)
		stopOnce.Do(func() { close(stopped) }) // the first push is in: the publish is under way
	}})
	log := &retryLog{}
	// Two or three small batches per MPUB: thousands of pipelined MPUBs.
	p := startPublisher(t, PublisherConfig{NSQDAddr: nsqd.Addr, Topic: topic, MaxMessageBytes: 4 << 10,
		MaxBodyBytes: 10 << 10, MaxPushesPerBatch: 10, RetryMin: 10 * time.Millisecond,
		RetryMax: 100 * time.Millisecond, Logger: slog.New(log)})
	pushes := variedPushes(30_000)

	done := make(chan error, 1)
	go func() { done <- p.Publish(t.Context(), pushes) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("no push arrived within 30s")
	}
	nsqd.Stop(t)
	select {
	case err := <-done:
		// Possible on a very slow machine; the test then only checks that
		// nothing accepted is lost across the restart.
		t.Logf("Publish returned %v before the outage", err)
		done <- err
	default:
	}
	nsqd.Restart(t)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Publish did not return within 60s of the restart")
	}
	waitFor(t, 60*time.Second, "every push", func() bool { return c.Stats().Pushes >= int64(len(pushes)) })
	got.check(t, pushes)
	t.Logf("publish retries: %d; consumer %+v", log.retries.Load(), c.Stats())
}

func TestPublishGivesUp(t *testing.T) {
	noLeaks(t)
	down := enginetest.StartNSQD(t) // an address with nothing listening
	down.Stop(t)
	pushes := variedPushes(10)
	cfg := PublisherConfig{NSQDAddr: down.Addr, Topic: "coupon_push", RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond}

	t.Run("context ends", func(t *testing.T) {
		p := startPublisher(t, cfg)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		err := p.Publish(ctx, pushes)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Publish = %v, want a wrapped context.DeadlineExceeded", err)
		}
		t.Log(err)
	})
	t.Run("context already done", func(t *testing.T) {
		p := startPublisher(t, cfg)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := p.Publish(ctx, pushes); !errors.Is(err, context.Canceled) {
			t.Fatalf("Publish = %v, want a wrapped context.Canceled", err)
		}
	})
	t.Run("publisher stopped", func(t *testing.T) {
		log := &retryLog{}
		c := cfg
		c.Logger = slog.New(log)
		p := startPublisher(t, c)
		done := make(chan error, 1)
		go func() { done <- p.Publish(t.Context(), pushes) }()
		waitFor(t, 10*time.Second, "a retry", func() bool { return log.retries.Load() >= 1 })
		p.Stop()
		select {
		case err := <-done:
			if !errors.Is(err, ErrStopped) {
				t.Fatalf("Publish = %v, want ErrStopped", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Publish did not return within 10s of Stop")
		}
	})
}

func TestPublishRejected(t *testing.T) {
	noLeaks(t)
	tcp, _ := enginetest.NSQD(t)
	// A message limit above nsqd's 1 MiB default: nsqd refuses the batch,
	// and retrying cannot help.
	p := startPublisher(t, PublisherConfig{NSQDAddr: tcp, Topic: enginetest.Prefix(t),
		MaxMessageBytes: 2 << 20, MaxPushesPerBatch: 100_000})
	err := p.Publish(t.Context(), manyPushes(8000, 1)) // ~1.6 MB in one batch
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("Publish = %v, want ErrRejected", err)
	}
	t.Log(err)
}

func TestConsumerLifecycle(t *testing.T) {
	noLeaks(t)
	tcp, _ := enginetest.NSQD(t)
	topic := enginetest.Prefix(t)
	base := ConsumerConfig{NSQDAddr: tcp, Topic: topic, Channel: "message_center", ReconnectInterval: 20 * time.Millisecond}

	t.Run("stop waits for the handler", func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		var handlerDone atomic.Bool
		cfg := base
		cfg.Handle = func(Push, time.Duration) {
			close(entered)
			<-release
			handlerDone.Store(true)
		}
		c, err := NewConsumer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := startPublisher(t, PublisherConfig{NSQDAddr: tcp, Topic: topic}).Publish(t.Context(), variedPushes(1)); err != nil {
			t.Fatal(err)
		}
		<-entered
		stopped := make(chan struct{})
		go func() { c.Stop(); close(stopped) }()
		close(release)
		<-stopped
		if !handlerDone.Load() {
			t.Fatal("Stop returned before the handler did")
		}
		c.Stop() // idempotent
		if err := c.Start(t.Context()); !errors.Is(err, ErrStopped) {
			t.Fatalf("Start after Stop = %v, want ErrStopped", err)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		c, err := NewConsumer(base)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err == nil {
			t.Fatal("second Start succeeded")
		}
		cancel()
		c.Stop() // returns once the ctx watcher has stopped everything
	})
	t.Run("nsqd unreachable", func(t *testing.T) {
		down := enginetest.StartNSQD(t)
		down.Stop(t)
		cfg := base
		cfg.NSQDAddr = down.Addr
		c, err := NewConsumer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		if err := c.Start(t.Context()); err == nil {
			t.Fatal("Start succeeded with nsqd down")
		}
	})
	t.Run("stop before start", func(t *testing.T) {
		c, err := NewConsumer(base)
		if err != nil {
			t.Fatal(err)
		}
		c.Stop()
		if err := c.Start(t.Context()); !errors.Is(err, ErrStopped) {
			t.Fatalf("Start after Stop = %v, want ErrStopped", err)
		}
	})
}

func TestConsumerConfigValidate(t *testing.T) {
	t.Parallel()
	ok := ConsumerConfig{NSQDAddr: "127.0.0.1:4150", Topic: "coupon_push", Channel: "message_center"}
	tests := []struct {
		name string
		edit func(*ConsumerConfig)
		want string
	}{
		{"defaults", func(*ConsumerConfig) {}, ""},
		{"ephemeral channel", func(c *ConsumerConfig) { c.Channel = "tail#ephemeral" }, ""},
		{"no address", func(c *ConsumerConfig) { c.NSQDAddr = "" }, "NSQDAddr"},
		{"bad topic", func(c *ConsumerConfig) { c.Topic = "a/b" }, "Topic"},
		{"no channel", func(c *ConsumerConfig) { c.Channel = "" }, "Channel"},
		{"negative dedup", func(c *ConsumerConfig) { c.DedupCapacity = -1 }, "DedupCapacity"},
		{"negative in flight", func(c *ConsumerConfig) { c.MaxInFlight = -1 }, "MaxInFlight"},
		{"tiny reconnect", func(c *ConsumerConfig) { c.ReconnectInterval = time.Millisecond }, "ReconnectInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// TestConcurrentPublish: the scheduler's slots share one Publisher. Under
// -race this fails if handing MPUBs to go-nsq is not serialized (its
// connect reads loggers that SetLogger writes).
func TestConcurrentPublish(t *testing.T) {
	noLeaks(t)
	tcp, _ := enginetest.NSQD(t)
	topic := enginetest.Prefix(t)
	got := newReceived()
	c := startConsumer(t, ConsumerConfig{NSQDAddr: tcp, Topic: topic, Handle: got.handle})
	p := startPublisher(t, PublisherConfig{NSQDAddr: tcp, Topic: topic, MaxPushesPerBatch: 20})
	pushes := variedPushes(800)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Publish(t.Context(), pushes[g*100:(g+1)*100]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	waitFor(t, 30*time.Second, "every push", func() bool { return c.Stats().Pushes >= int64(len(pushes)) })
	got.check(t, pushes)
}

// TestPublishEncodedRoundTrip: pushes encoded ahead (Encode, as the
// scheduler seals prepared work) and published later, in two parts, reach
// the consumer whole, once each, in batches within the limits.
func TestPublishEncodedRoundTrip(t *testing.T) {
	noLeaks(t)
	tcp, _ := enginetest.NSQD(t)
	topic := enginetest.Prefix(t)
	got := newReceived()
	c := startConsumer(t, ConsumerConfig{NSQDAddr: tcp, Topic: topic, Handle: got.handle})
	p := startPublisher(t, PublisherConfig{NSQDAddr: tcp, Topic: topic, MaxMessageBytes: 16 << 10, MaxBodyBytes: 40 << 10, MaxPushesPerBatch: 50})
	pushes := variedPushes(2000)
	a, err := p.Encode(pushes[:700])
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Encode(pushes[700:])
	if err != nil {
		t.Fatal(err)
	}
	if err := p.PublishEncodedWhile(t.Context(), [][]byte{a, b}, func() bool { return false }); !errors.Is(err, ErrWithheld) {
		t.Fatalf("publish while not valid = %v; want ErrWithheld", err)
	}
	if err := p.PublishEncodedWhile(t.Context(), [][]byte{a, b}, func() bool { return true }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every push", func() bool { return c.Stats().Pushes >= int64(len(pushes)) })
	got.check(t, pushes)
	if err := p.PublishEncodedWhile(t.Context(), [][]byte{a[:len(a)-1]}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("publish of a cut encoding = %v; want ErrInvalid", err)
	}
}
