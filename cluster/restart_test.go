package cluster

import (
	"testing"
	"time"

	"couponpush/internal/enginetest"
)

// TestAgentRestart runs a watcher and a registration against an agent of
// their own, stops it (Consul unreachable) and starts it again empty (a dev
// agent keeps no state): the watcher keeps N through the outage and then
// follows the fresh, lower index; the registration comes back on its own.
func TestAgentRestart(t *testing.T) {
	parallel(t)
	agent := enginetest.StartConsul(t)
	c, logs := newClient(t, agent.Addr)
	ctx := testCtx(t)

	if ok, err := c.SetQueueCount(ctx, 5, 0); err != nil || !ok {
		t.Fatalf("SetQueueCount: %v, %v", ok, err)
	}
	w := c.NewQueueCountWatcher(16)
	w.out.min, w.out.max = 50*time.Millisecond, 200*time.Millisecond
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if got := w.Count(); got != 5 {
		t.Fatalf("Count = %d, want 5", got)
	}

	name := c.Prefix()
	r := c.Register(Service{ID: name + "-w", Name: name, TTL: 600 * time.Millisecond}, nil)
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	eventually(t, "registered", func() bool { return workerStatus(t, c, name, name+"-w") == StatusPassing })

	agent.Stop(t)
	eventually(t, "the watcher to notice the outage", func() bool {
		return logs.count("consul unreachable; keeping the queue count", "", nil) == 1
	})
	if got := w.Count(); got != 5 {
		t.Errorf("Count during the outage = %d, want the last good 5", got)
	}

	agent.Restart(t)
	eventually(t, "the watcher to see the empty agent", func() bool { return w.Count() == 16 })
	eventually(t, "re-registered", func() bool { return workerStatus(t, c, name, name+"-w") == StatusPassing })

	// Blocking queries work again at the new, lower index.
	if ok, err := c.SetQueueCount(ctx, 7, 0); err != nil || !ok {
		t.Fatalf("SetQueueCount after restart: %v, %v", ok, err)
	}
	eventually(t, "N=7 after restart", func() bool { return w.Count() == 7 })
	if n := logs.count("consul unreachable; keeping the queue count", "", nil); n != 1 {
		t.Errorf("watcher outage logged %d times, want once", n)
	}
}
