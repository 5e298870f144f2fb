package push

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// newTestPublisher builds a Publisher that never connects (these tests only
// encode); cfg's NSQDAddr and Topic are filled in when empty.
func newTestPublisher(t testing.TB, cfg PublisherConfig) *Publisher {
	t.Helper()
	if cfg.NSQDAddr == "" {
		cfg.NSQDAddr = "127.0.0.1:1"
	}
	if cfg.Topic == "" {
		cfg.Topic = "coupon_push"
	}
	p, err := NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// manyPushes returns n valid pushes for users 1..n, each with items items.
func manyPushes(n, items int) []Push {
	out := make([]Push, n)
	for i := range out {
		its := make([]Item, items)
		for j := range its {
			at := grab.Add(-time.Minute + time.Duration(j)*time.Second)
			its[j] = Item{TemplateID: int64(j + 1), PushAt: at, GrabStart: at.Add(time.Minute)}
		}
		out[i] = NewPush(int64(i+1), its)
	}
	return out
}

func TestPublisherConfigValidate(t *testing.T) {
	t.Parallel()
	ok := PublisherConfig{NSQDAddr: "127.0.0.1:4150", Topic: "coupon_push"}
	tests := []struct {
		name string
		edit func(*PublisherConfig)
		want string // "" means valid
	}{
		{"defaults", func(*PublisherConfig) {}, ""},
		{"all set", func(c *PublisherConfig) {
			c.MaxMessageBytes, c.MaxBodyBytes, c.MaxPushesPerBatch = 4096, 8192, 10
			c.RetryMin, c.RetryMax = time.Millisecond, time.Millisecond
		}, ""},
		{"message limit above default body limit", func(c *PublisherConfig) { c.MaxMessageBytes = 8 << 20 }, ""},
		{"retry min above default max", func(c *PublisherConfig) { c.RetryMin = 5 * time.Second }, ""},
		{"no address", func(c *PublisherConfig) { c.NSQDAddr = "" }, "NSQDAddr is required"},
		{"address without port", func(c *PublisherConfig) { c.NSQDAddr = "localhost" }, "NSQDAddr"},
		{"no topic", func(c *PublisherConfig) { c.Topic = "" }, "Topic"},
		{"bad topic", func(c *PublisherConfig) { c.Topic = "coupon push" }, "not a valid NSQ topic"},
		{"long topic", func(c *PublisherConfig) { c.Topic = strings.Repeat("t", 65) }, "not a valid NSQ topic"},
		{"negative message limit", func(c *PublisherConfig) { c.MaxMessageBytes = -1 }, "MaxMessageBytes"},
		{"tiny message limit", func(c *PublisherConfig) { c.MaxMessageBytes = 100 }, "MaxMessageBytes"},
		{"body below message", func(c *PublisherConfig) { c.MaxMessageBytes, c.MaxBodyBytes = 4096, 4100 }, "MaxBodyBytes"},
		{"negative body", func(c *PublisherConfig) { c.MaxBodyBytes = -1 }, "MaxBodyBytes"},
		{"negative pushes", func(c *PublisherConfig) { c.MaxPushesPerBatch = -1 }, "MaxPushesPerBatch"},
		{"negative retry", func(c *PublisherConfig) { c.RetryMin = -1 }, "RetryMin"},
		{"max below min", func(c *PublisherConfig) { c.RetryMin, c.RetryMax = time.Second, time.Millisecond }, "RetryMax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := ok
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
			p, err := NewPublisher(c)
			if (err == nil) != (tt.want == "") {
				t.Fatalf("NewPublisher error %v disagrees with Validate", err)
			}
			if p != nil {
				p.Stop()
				p.Stop() // idempotent
			}
		})
	}
}

func TestPublisherEncodeLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       PublisherConfig
		pushes    []Push
		wantMsgs  int // 0: only check limits
		wantFirst int // pushes in the first message, 0: skip
	}{
		{"defaults, encoded in parallel", PublisherConfig{}, manyPushes(20_000, 1), 40, 500},
		{"count limit", PublisherConfig{MaxPushesPerBatch: 3}, manyPushes(10, 1), 4, 3},
		{"one push per batch", PublisherConfig{MaxPushesPerBatch: 1}, manyPushes(5, 2), 5, 1},
		{"byte limit binds", PublisherConfig{MaxMessageBytes: MinMessageBytes}, manyPushes(100, 1), 0, 0},
		{"byte limit with big pushes", PublisherConfig{MaxMessageBytes: 64 << 10, MaxPushesPerBatch: 10_000}, manyPushes(3000, 20), 0, 0},
		{"huge input, default byte limit", PublisherConfig{MaxPushesPerBatch: 100_000}, manyPushes(20_000, 3), 0, 0},
		{"single push", PublisherConfig{}, manyPushes(1, 1), 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newTestPublisher(t, tt.cfg)
			msgs, _, err := p.encode(tt.pushes)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantMsgs != 0 && len(msgs) != tt.wantMsgs {
				t.Errorf("%d messages, want %d", len(msgs), tt.wantMsgs)
			}
			maxBytes, maxPushes := p.cfg.MaxMessageBytes, p.cfg.MaxPushesPerBatch
			next := 0 // index of the next push expected
			batchIDs := map[string]bool{}
			for i, m := range msgs {
				if len(m) > maxBytes {
					t.Fatalf("message %d is %d bytes, limit %d", i, len(m), maxBytes)
				}
				b, err := DecodeBatch(m)
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if batchIDs[b.ID] || len(b.ID) != 32 {
					t.Fatalf("batch id %q repeated or not 32 hex", b.ID)
				}
				batchIDs[b.ID] = true
				if len(b.Pushes) > maxPushes {
					t.Fatalf("message %d has %d pushes, limit %d", i, len(b.Pushes), maxPushes)
				}
				if i == 0 && tt.wantFirst != 0 && len(b.Pushes) != tt.wantFirst {
					t.Errorf("first message has %d pushes, want %d", len(b.Pushes), tt.wantFirst)
				}
				if i < len(msgs)-1 && len(b.Pushes) < maxPushes && len(tt.pushes) < parallelMinPushes {
					// Not full by count, so the next push must not have fit
					// (parallel chunks may end on a short batch).
					var e encoder
					nextLen := len(e.push(nil, &tt.pushes[next+len(b.Pushes)])) + 1
					if len(m)+nextLen <= maxBytes {
						t.Fatalf("message %d closed early: %d bytes + next push %d ≤ %d", i, len(m), nextLen, maxBytes)
					}
				}
				for _, got := range b.Pushes {
					if want := tt.pushes[next]; got.ID != want.ID || got.UserID != want.UserID || len(got.Items) != len(want.Items) {
						t.Fatalf("message %d: push %s (user %d), want %s (user %d)", i, got.ID, got.UserID, want.ID, want.UserID)
					}
					next++
				}
			}
			if next != len(tt.pushes) {
				t.Fatalf("messages carry %d pushes, want %d", next, len(tt.pushes))
			}
		})
	}
}

func TestPublisherEncodeRejects(t *testing.T) {
	t.Parallel()
	huge := manyPushes(1, 40)[0] // ~3.5 KB encoded
	bad := testPush(1, 1)
	bad.UserID = 0
	tests := []struct {
		name    string
		cfg     PublisherConfig
		pushes  []Push
		wantErr error
		want    string
	}{
		{"push larger than a message", PublisherConfig{MaxMessageBytes: MinMessageBytes}, []Push{huge}, ErrTooLarge, "push 0"},
		{"large push after small ones", PublisherConfig{MaxMessageBytes: MinMessageBytes}, append(manyPushes(3, 1), huge), ErrTooLarge, "push 3"},
		{"invalid push", PublisherConfig{}, append(manyPushes(3, 1), bad), ErrInvalid, "push 3"},
		{"invalid push in a later parallel chunk", PublisherConfig{}, func() []Push {
			ps := manyPushes(3*parallelMinPushes, 1)
			ps[len(ps)-2], ps[len(ps)-1] = bad, bad
			return ps
		}(), ErrInvalid, fmt.Sprintf("push %d", 3*parallelMinPushes-2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newTestPublisher(t, tt.cfg)
			msgs, _, err := p.encode(tt.pushes)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("encode = %d messages, %v; want %v mentioning %q", len(msgs), err, tt.wantErr, tt.want)
			}
			// Publish fails the same way before connecting to anything.
			if err := p.Publish(t.Context(), tt.pushes); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Publish = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestGroup(t *testing.T) {
	t.Parallel()
	msg := func(n int) []byte { return make([]byte, n) }
	tests := []struct {
		name    string
		sizes   []int
		maxBody int
		want    []int // messages per group
	}{
		{"all in one", []int{10, 10, 10}, 1000, []int{3}},
		{"exact fit", []int{10, 10}, 4 + 14 + 14, []int{2}},
		{"one byte over", []int{10, 10}, 4 + 14 + 13, []int{1, 1}},
		{"splits in order", []int{100, 100, 100, 100, 100}, 4 + 3*104, []int{3, 2}},
		{"single message at the limit", []int{92}, 100, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var msgs [][]byte
			for _, s := range tt.sizes {
				msgs = append(msgs, msg(s))
			}
			groups := group(msgs, tt.maxBody)
			var got []int
			for _, g := range groups {
				got = append(got, len(g))
				body := 4
				for _, m := range g {
					body += 4 + len(m)
				}
				if body > tt.maxBody {
					t.Errorf("group body %d > %d", body, tt.maxBody)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("groups of %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	p := newTestPublisher(t, PublisherConfig{RetryMin: 50 * time.Millisecond, RetryMax: 2 * time.Second})
	tests := []struct {
		attempt int
		ceiling time.Duration
	}{
		{1, 50 * time.Millisecond},
		{2, 100 * time.Millisecond},
		{3, 200 * time.Millisecond},
		{6, 1600 * time.Millisecond},
		{7, 2 * time.Second},
		{1000, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("attempt ", tt.attempt), func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 200 {
				d := p.backoff(tt.attempt)
				if d < tt.ceiling/2 || d > tt.ceiling {
					t.Fatalf("backoff(%d) = %s, want within [%s, %s]", tt.attempt, d, tt.ceiling/2, tt.ceiling)
				}
				seen[d] = true
			}
			if len(seen) < 2 {
				t.Fatalf("backoff(%d) has no jitter", tt.attempt)
			}
		})
	}
}

func TestPublishAfterStop(t *testing.T) {
	t.Parallel()
	p := newTestPublisher(t, PublisherConfig{})
	p.Stop()
	if err := p.Publish(t.Context(), manyPushes(1, 1)); !errors.Is(err, ErrStopped) {
		t.Fatalf("Publish after Stop = %v, want ErrStopped", err)
	}
	if err := p.Publish(t.Context(), nil); err != nil {
		t.Fatalf("Publish of nothing = %v, want nil", err)
	}
}

// BenchmarkEncode encodes 200,000 one-item pushes (a hot coupon's burst)
// into batch messages with the default limits. "cold" allocates the buffer
// as the first Publish does; "warm" reuses it as later ones do.
func BenchmarkEncode(b *testing.B) {
	const n = 200_000
	for _, warm := range []bool{false, true} {
		name := map[bool]string{false: "cold", true: "warm"}[warm]
		b.Run(fmt.Sprintf("%d pushes %s", n, name), func(b *testing.B) {
			p := newTestPublisher(b, PublisherConfig{})
			pushes := manyPushes(n, 1)
			b.ReportAllocs()
			var bytes int
			for b.Loop() {
				msgs, arenas, err := p.encode(pushes)
				if err != nil {
					b.Fatal(err)
				}
				bytes = 0
				for _, m := range msgs {
					bytes += len(m)
				}
				if warm {
					p.release(arenas)
				}
			}
			b.SetBytes(int64(bytes))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/op")
		})
	}
}
