package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"couponpush/queue"
)

// addUsers indexes one reminder for each of users 1..n at at.
func addUsers(t *testing.T, r *queue.Router, n int, at time.Time) {
	t.Helper()
	for u := int64(1); u <= int64(n); u++ {
		if err := r.Add(t.Context(), queue.Entry{UserID: u, TemplateID: 3, PushAt: at, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestQueuesLayout(t *testing.T) {
	parallel(t)
	e := newEngines(t)
	ctx := t.Context()
	qc, err := queue.New(e.rdb, queue.Options{Prefix: e.prefix, Owner: "w7"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qc.InitLayout(ctx, 4); err != nil {
		t.Fatal(err)
	}
	// Paused, so the reminders due a minute ago wait: lag.
	if err := qc.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	addUsers(t, qc.NewRouter(func() int { return 4 }), 10, time.Now().Add(-time.Minute))
	busy := queue.Shard(1, 4)
	if _, ok, err := qc.Acquire(ctx, busy, time.Minute); err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}

	r := runCLI(t, append(e.flags(), "queues")...)
	r.want(t, 0, "layout: 4 queues (generation", "")
	for _, s := range []string{"paused: yes", "QUEUE", "EARLIEST_DUE", "LAG", "IN_FLIGHT", "LEASE", "w7 (", "total  10", "redis time: "} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("queues lacks %q:\n%s", s, r.stdout)
		}
	}

	r = runCLI(t, append(e.flags(), "queues", "-json")...)
	var out queuesJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
		t.Fatalf("queues -json: %v, %+v", err, r)
	}
	if out.Layout == nil || !out.Layout.Recorded || out.Layout.To != 4 || !out.Layout.Stable || len(out.Queues) != 4 || !out.Paused || out.Found {
		t.Fatalf("queues -json = %+v (layout %+v)", out, out.Layout)
	}
	var users int64
	for _, q := range out.Queues {
		users += q.Users
		if q.Users > 0 && (q.DueUsers != q.Users || q.LagMs < 50_000 || q.EarliestDue == "" || q.Epoch == "") {
			t.Errorf("queue %+v: want its users due, about a minute late", q)
		}
		if held := q.Queue == busy; q.LeaseHeld != held || held && (q.LeaseHolder != "w7" || q.LeaseTTLMs <= 0) {
			t.Errorf("queue %d lease: %+v", q.Queue, q)
		}
	}
	if users != 10 {
		t.Errorf("users over all queues = %d, want 10", users)
	}
}

// syncBuffer is a bytes.Buffer that a test reads while run writes it.
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

// coordinate plays the workers' move coordinator once: when Consul's N
// becomes to, it moves the recorded layout there, queue by queue, first
// waiting for hold() to return (to let the CLI see the move running).
func coordinate(e *engines, to int, hold func() error) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for {
				n, _, _, err := e.consul.QueueCount(ctx)
				if err != nil {
					return err
				}
				if n == to {
					break
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(10 * time.Millisecond):
				}
			}
			st, _, err := e.queue.LayoutStatus(ctx)
			if err != nil {
				return err
			}
			l, err := e.queue.BeginMove(ctx, st.Layout, to)
			if err != nil {
				return err
			}
			if err := hold(); err != nil {
				return err
			}
			for q := 0; q < l.From; q++ {
				if _, err := e.queue.MoveQueue(ctx, l, q, 10); err != nil {
					return err
				}
			}
			_, err = e.queue.FinishMove(ctx, l)
			return err
		}()
	}()
	return done
}

func TestQueuesSetFollowsTheMove(t *testing.T) {
	parallel(t)
	e := newEngines(t)
	ctx := t.Context()
	if _, err := e.queue.InitLayout(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.consul.SetQueueCount(ctx, 4, 0); err != nil || !ok {
		t.Fatal(ok, err)
	}
	addUsers(t, e.queue.NewRouter(func() int { return 4 }), 200, time.Now().Add(time.Hour))

	// 4 -> 6: the CLI shows the move running (plain lines: stdout is no
	// terminal), then its end.
	var out, errOut syncBuffer
	moved := coordinate(e, 6, func() error {
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), "moving 4 -> 6 queues"); {
			if time.Now().After(deadline) {
				return errors.New("the CLI did not show the move running within 20s")
			}
			time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
		}
		return nil
	})
	code := run(ctx, append(e.flags(), "queues", "set", "6"), &out, &errOut)
	if err := <-moved; err != nil {
		t.Fatalf("coordinator: %v", err)
	}
	res := result{code, out.String(), errOut.String()}
	res.want(t, 0, e.prefix+"/queues/count: 4 -> 6", "")
	for _, s := range []string{"moving 4 -> 6 queues (generation", "done: 6 queues (generation", "users moved"} {
		if !strings.Contains(res.stdout, s) {
			t.Errorf("queues set output lacks %q:\n%s", s, res.stdout)
		}
	}
	st, _, err := e.queue.LayoutStatus(ctx)
	if err != nil || !st.Stable() || st.To != 6 {
		t.Fatalf("layout after the move: %+v %v", st, err)
	}

	// 6 -> 3 with -json: one JSON value on stdout, progress on stderr.
	moved = coordinate(e, 3, func() error { return nil })
	r := runCLI(t, append(e.flags(), "queues", "set", "3", "-json")...)
	if err := <-moved; err != nil {
		t.Fatalf("coordinator: %v", err)
	}
	var sj setJSON
	if err := json.Unmarshal([]byte(r.stdout), &sj); err != nil || r.code != 0 {
		t.Fatalf("queues set -json: %v, %+v", err, r)
	}
	if !sj.Changed || sj.From != "6" || sj.To != 3 || !sj.Waited || sj.Layout == nil || !sj.Layout.Stable || sj.Layout.To != 3 || sj.Layout.Generation != st.Gen+1 {
		t.Fatalf("queues set -json = %+v (layout %+v)", sj, sj.Layout)
	}

	// Already there: nothing to wait for.
	runCLI(t, append(e.flags(), "queues", "set", "3")...).want(t, 0, "already 3", "")

	// Another operator sets N while this one waits: it says so and stops.
	changed := make(chan error, 1)
	go func() {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			n, idx, _, err := e.consul.QueueCount(ctx)
			if err != nil {
				changed <- err
				return
			}
			if n == 8 {
				_, err := e.consul.SetQueueCount(ctx, 10, idx)
				changed <- err
				return
			}
		}
		changed <- errors.New("queues set 8 never wrote 8")
	}()
	r = runCLI(t, append(e.flags(), "queues", "set", "8", "-wait-timeout", "30s")...)
	if err := <-changed; err != nil {
		t.Fatal(err)
	}
	r.want(t, 1, "3 -> 8", "changed to 10 while waiting for 8")
	// Put N back to 3 for the next step.
	if _, idx, _, err := e.consul.QueueCount(ctx); err != nil {
		t.Fatal(err)
	} else if ok, err := e.consul.SetQueueCount(ctx, 3, idx); err != nil || !ok {
		t.Fatalf("set N back to 3: %v %v", ok, err)
	}

	// Nobody moves: the wait gives up with a clear message.
	t0 := time.Now()
	r = runCLI(t, append(e.flags(), "queues", "set", "9", "-wait-timeout", "500ms")...)
	r.want(t, 1, "3 -> 9", "the move did not finish within 500ms")
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("a 500ms wait took %v", d)
	}
	// -wait=false returns at once.
	runCLI(t, append(e.flags(), "queues", "set", "10", "-wait=false")...).want(t, 0, "9 -> 10", "")
}

func TestPauseResume(t *testing.T) {
	parallel(t)
	e := newEngines(t)
	paused := func() bool {
		p, err := e.queue.Paused(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	runCLI(t, append(e.flags(), "pause")...).want(t, 0, "paused: workers of", "")
	if !paused() {
		t.Fatal("pause did not set the flag")
	}
	runCLI(t, append(e.flags(), "pause")...).want(t, 0, "paused", "") // idempotent
	r := runCLI(t, append(e.flags(), "-json", "resume")...)
	var pj pauseJSON
	if err := json.Unmarshal([]byte(r.stdout), &pj); err != nil || r.code != 0 || pj.Paused || pj.Prefix != e.prefix {
		t.Fatalf("resume -json: %+v %v %+v", pj, err, r)
	}
	if paused() {
		t.Fatal("resume did not clear the flag")
	}
	runCLI(t, append(e.flags(), "resume")...).want(t, 0, "resumed", "")
	// Only this prefix is paused.
	runCLI(t, append(e.flags(), "pause")...).want(t, 0, "paused", "")
	other, err := queue.New(e.rdb, queue.Options{Prefix: e.prefix + "_other"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := other.Paused(t.Context()); err != nil || p {
		t.Fatalf("another prefix paused: %v %v", p, err)
	}
}

func TestMeter(t *testing.T) {
	parallel(t)
	tests := []struct {
		name        string
		tty         bool
		done, total int64
		want        string
	}{
		{"bar", true, 50, 100, "x [###############...............] 50/100 (50%)"},
		{"bar full", true, 100, 100, "x [##############################] 100/100 (100%)"},
		{"bar overrun", true, 120, 100, "x [##############################] 120/100 (100%)"},
		{"line", false, 1, 3, "x: 1/3 (33%)"},
		{"no total", false, 5, 0, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &meter{tty: tt.tty}
			if got := m.line(tt.done, tt.total, "x"); got != tt.want {
				t.Errorf("line = %q, want %q", got, tt.want)
			}
		})
	}
	// On a terminal the bar is redrawn in place and its line ended once.
	var b bytes.Buffer
	m := &meter{w: &b, tty: true}
	m.show(1, 2, "x")
	m.show(2, 2, "x")
	m.done(2, 2, "x")
	if s := b.String(); strings.Count(s, "\r") != 3 || strings.Count(s, "\n") != 1 {
		t.Errorf("terminal output %q", s)
	}
	// Plain lines: at most one a second, and the last.
	b.Reset()
	m = &meter{w: &b, every: time.Hour}
	for i := range int64(100) {
		m.show(i, 100, "x")
	}
	m.done(100, 100, "x")
	if got := b.String(); got != "x: 0/100 (0%)\nx: 100/100 (100%)\n" {
		t.Errorf("plain output %q", got)
	}
}
