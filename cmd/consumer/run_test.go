package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"couponpush/internal/enginetest"
	"couponpush/push"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

func TestParseConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"COUPONPUSH_NSQD_TCP": "10.0.0.1:4150", "COUPONPUSH_TOPIC": "env_topic"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr string
	}{
		{"defaults", nil, nil, config{NSQD: "127.0.0.1:4150", Topic: "coupon_push", Channel: "message_center", Every: time.Second}, ""},
		{"environment", nil, env, config{NSQD: "10.0.0.1:4150", Topic: "env_topic", Channel: "message_center", Every: time.Second}, ""},
		{"flags over environment", []string{"-nsqd", "127.0.0.1:5000", "-topic", "t", "-channel", "c", "-quiet", "-every", "50ms"}, env,
			config{NSQD: "127.0.0.1:5000", Topic: "t", Channel: "c", Quiet: true, Every: 50 * time.Millisecond}, ""},
		{"bad topic", []string{"-topic", "no spaces"}, nil, config{}, "Topic"},
		{"bad address", []string{"-nsqd", "nowhere"}, nil, config{}, "NSQDAddr"},
		{"bad every", []string{"-every", "0s"}, nil, config{}, "-every"},
		{"unknown flag", []string{"-x"}, nil, config{}, "not defined"},
		{"extra argument", []string{"extra"}, nil, config{}, "unexpected arguments"},
		{"help", []string{"-h"}, nil, config{}, flag.ErrHelp.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
			case tt.wantErr == "" && got != tt.want:
				t.Fatalf("config %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLateness(t *testing.T) {
	t.Parallel()
	ms := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	tests := []struct {
		name          string
		values        []time.Duration
		p50, p99, max time.Duration
	}{
		{"empty", nil, 0, 0, 0},
		{"one value", []time.Duration{ms(3.5)}, ms(3.5), ms(3.5), ms(3.5)},
		{"spread", func() []time.Duration {
			var v []time.Duration
			for i := range 100 {
				v = append(v, ms(float64(i)+0.5)) // 0.5 .. 99.5 ms
			}
			return v
		}(), ms(50), ms(99), ms(99.5)},
		{"early pushes", []time.Duration{ms(-5.5), ms(-5.5), ms(1)}, ms(-5), ms(1), ms(1)},
		{"beyond the histogram", []time.Duration{-time.Hour, time.Hour, time.Hour}, time.Hour, time.Hour, time.Hour},
		{"below the histogram", []time.Duration{-time.Hour, -time.Hour, time.Millisecond}, -lateLow + time.Millisecond, time.Millisecond, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := newLateness()
			for _, v := range tt.values {
				l.record(v)
			}
			if got := l.quantile(0.5); got != tt.p50 {
				t.Errorf("p50 %s, want %s", got, tt.p50)
			}
			if got := l.quantile(0.99); got != tt.p99 {
				t.Errorf("p99 %s, want %s", got, tt.p99)
			}
			if l.max != tt.max {
				t.Errorf("max %s, want %s", l.max, tt.max)
			}
		})
	}
}

func TestAppendPushLine(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 9, 59, 0, 0, time.UTC)
	p := push.NewPush(42, []push.Item{
		{TemplateID: 7, PushAt: at, GrabStart: at.Add(time.Minute)},
		{TemplateID: 8, PushAt: at.Add(time.Second), GrabStart: at.Add(time.Minute)},
	})
	got := string(appendPushLine(nil, p, 12345*time.Microsecond))
	want := p.ID + " 42 2026-11-23T09:59:00.000Z late=12.3ms items=2\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// syncBuffer is a bytes.Buffer safe for the run goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRun(t *testing.T) {
	tcp, _ := enginetest.NSQD(t)
	at := time.Now().UTC()
	pushes := []push.Push{
		push.NewPush(1, []push.Item{{TemplateID: 7, PushAt: at, GrabStart: at.Add(time.Minute)}}),
		push.NewPush(2, []push.Item{{TemplateID: 7, PushAt: at, GrabStart: at.Add(time.Minute)}}),
		push.NewPush(3, []push.Item{{TemplateID: 7, PushAt: at, GrabStart: at.Add(time.Minute)}}),
	}
	tests := []struct {
		name  string
		quiet bool
	}{
		{"one line per push", false},
		{"quiet", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			topic := enginetest.Prefix(t)
			args := []string{"-nsqd", tcp, "-topic", topic, "-every", "20ms"}
			if tt.quiet {
				args = append(args, "-quiet")
			}
			var stdout, stderr syncBuffer
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- run(ctx, args, func(string) string { return "" }, &stdout, &stderr) }()

			p, err := push.NewPublisher(push.PublisherConfig{NSQDAddr: tcp, Topic: topic})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Stop()
			// Publish once the consumer is up (its first summary), then repeat
			// the pushes: the repeats must be dropped.
			waitFor(t, "a first summary", func() bool { return strings.Contains(stdout.String(), "summary ") })
			for range 2 {
				if err := p.Publish(t.Context(), pushes); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "a summary with every push", func() bool {
				return strings.Contains(stdout.String(), "summary pushes=3 duplicates=3 ")
			})
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("run did not return within 10s of cancel")
			}

			out := stdout.String()
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "summary pushes=3 duplicates=3 malformed=0 batches=2 late_p50=") {
				t.Errorf("last line %q is not the final summary", last)
			}
			// A summary is printed when it changed: never the same twice
			// in a row, but for the final one.
			var prev string
			for i, l := range lines[:len(lines)-1] {
				if strings.HasPrefix(l, "summary ") {
					if l == prev {
						t.Errorf("line %d repeats the summary before it: %q", i+1, l)
					}
					prev = l
				}
			}
			for _, p := range pushes {
				n := strings.Count(out, p.ID+" ")
				if want := map[bool]int{false: 1, true: 0}[tt.quiet]; n != want {
					t.Errorf("push %s printed %d times, want %d\n%s", p.ID, n, want, out)
				}
			}
			if stderr.String() != "" {
				t.Errorf("stderr: %s", stderr.String())
			}
		})
	}
}

func TestRunFailsWithoutNSQD(t *testing.T) {
	defer goleak.VerifyNone(t)
	down := enginetest.StartNSQD(t)
	down.Stop(t)
	err := run(t.Context(), []string{"-nsqd", down.Addr}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), down.Addr) {
		t.Fatalf("run = %v, want an error naming %s", err, down.Addr)
	}
	if err := run(t.Context(), []string{"-h"}, func(string) string { return "" }, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -h = %v, want flag.ErrHelp", err)
	}
}

// waitFor polls cond until it holds, failing the test after 30s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // a poll interval
	}
}
