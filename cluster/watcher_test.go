package cluster

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

func TestWatcherFollowsAndIgnoresBadValues(t *testing.T) {
	parallel(t)
	c, logs := newClient(t, "")
	ctx := testCtx(t)
	put := func(v string) uint64 {
		t.Helper()
		if _, err := c.api.KV().Put(&api.KVPair{Key: c.QueueCountKey(), Value: []byte(v)}, nil); err != nil {
			t.Fatal(err)
		}
		p, _, err := c.api.KV().Get(c.QueueCountKey(), nil)
		if err != nil || p == nil {
			t.Fatalf("read back %q: %v", v, err)
		}
		return p.ModifyIndex
	}

	w := c.NewQueueCountWatcher(16)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	if got := w.Count(); got != 16 {
		t.Fatalf("Count with the key absent = %d, want the default 16", got)
	}

	if ok, err := c.SetQueueCount(ctx, 5, 0); err != nil || !ok {
		t.Fatalf("SetQueueCount: %v, %v", ok, err)
	}
	eventually(t, "N=5", func() bool { return w.Count() == 5 })
	select {
	case n := <-w.Changes():
		if n != 5 {
			t.Errorf("Changes gave %d, want 5", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change notified")
	}

	for _, bad := range []string{"0", "-3", "abc", "", "65537"} {
		idx := put(bad)
		eventually(t, "the watcher to log bad value "+bad, func() bool {
			return logs.count("ignoring bad queue count; keeping the last good one", "modify_index", idx) == 1
		})
		if got := w.Count(); got != 5 {
			t.Fatalf("after bad value %q Count = %d, want the last good 5", bad, got)
		}
	}

	put(" 9\n")
	eventually(t, "N=9", func() bool { return w.Count() == 9 })

	if _, err := c.api.KV().Delete(c.QueueCountKey(), nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the default after delete", func() bool { return w.Count() == 16 })

	// Latest wins: an unread notification is replaced, not queued.
	put("2")
	eventually(t, "N=2", func() bool { return w.Count() == 2 })
	put("3")
	eventually(t, "N=3", func() bool { return w.Count() == 3 })
	if n := <-w.Changes(); n != 3 {
		t.Errorf("Changes gave %d, want the latest 3", n)
	}
	select {
	case n := <-w.Changes():
		t.Errorf("second notification %d, want none", n)
	default:
	}

	w.Stop()
	w.Stop() // idempotent
	if err := w.Start(ctx); err == nil {
		t.Error("Start after Stop succeeded")
	}
}

func TestWatcherStartsWithBadValue(t *testing.T) {
	parallel(t)
	c, _ := newClient(t, "")
	if _, err := c.api.KV().Put(&api.KVPair{Key: c.QueueCountKey(), Value: []byte("zero")}, nil); err != nil {
		t.Fatal(err)
	}
	w := c.NewQueueCountWatcher(8)
	if err := w.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if got := w.Count(); got != 8 {
		t.Errorf("Count = %d, want the default 8 while the key is bad", got)
	}
}

func TestWatcherConsulUnreachable(t *testing.T) {
	parallel(t)
	c, _ := newClient(t, deadAddr(t))
	w := c.NewQueueCountWatcher(12)
	start := time.Now()
	if err := w.Start(testCtx(t)); err != nil {
		t.Fatalf("Start with Consul down: %v", err)
	}
	if d := time.Since(start); d > firstReadTimeout+time.Second {
		t.Errorf("Start took %v", d)
	}
	if got := w.Count(); got != 12 {
		t.Errorf("Count = %d, want the default 12", got)
	}
	w.Stop()
}

func TestWatcherLogsOncePerOutage(t *testing.T) {
	parallel(t)
	addr, attempts := hangupAddr(t)
	c, logs := newClient(t, addr)
	w := c.NewQueueCountWatcher(3)
	w.out.min, w.out.max = time.Millisecond, 10*time.Millisecond
	if err := w.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	eventually(t, "several attempts", func() bool { return attempts.Load() >= 6 })
	if n := logs.count("consul unreachable; keeping the queue count", "", nil); n != 1 {
		t.Errorf("outage logged %d times over %d attempts, want once", n, attempts.Load())
	}
	if got := w.Count(); got != 3 {
		t.Errorf("Count = %d, want the default 3", got)
	}
}

func TestOutageDelay(t *testing.T) {
	leakCheck(t)
	o := outage{min: 100 * time.Millisecond, max: time.Second}
	for i, want := range []time.Duration{100, 100, 200, 400, 800, 1000, 1000} {
		o.attempts = i
		want *= time.Millisecond
		if d := o.delay(); d < want*8/10 || d > want*12/10 {
			t.Errorf("after %d failures delay %v, want %v ±20%%", i, d, want)
		}
	}
}

func TestWatcherStartValueIsNotAChange(t *testing.T) {
	parallel(t)
	c, _ := newClient(t, "")
	ctx := testCtx(t)
	if ok, err := c.SetQueueCount(ctx, 4, 0); err != nil || !ok {
		t.Fatalf("SetQueueCount: %v, %v", ok, err)
	}
	w := c.NewQueueCountWatcher(16)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if got := w.Count(); got != 4 {
		t.Fatalf("Count = %d, want 4", got)
	}
	select {
	case n := <-w.Changes():
		t.Errorf("Changes gave the initial value %d", n)
	default:
	}
}
