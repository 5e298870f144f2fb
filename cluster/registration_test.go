package cluster

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// health is a healthy() func tests can flip.
type health struct{ err atomic.Pointer[error] }

func (h *health) set(err error) { h.err.Store(&err) }
func (h *health) check() error {
	if p := h.err.Load(); p != nil {
		return *p
	}
	return nil
}

// workerStatus returns the status of worker id, or "" if it is not listed.
func workerStatus(t *testing.T, c *Client, service, id string) string {
	t.Helper()
	ws, err := c.Workers(testCtx(t), service)
	if err != nil {
		t.Fatalf("Workers: %v", err)
	}
	for _, w := range ws {
		if w.ID == id {
			return w.Status
		}
	}
	return ""
}

func TestRegistrationLifecycle(t *testing.T) {
	parallel(t)
	c, _ := newClient(t, "")
	name := c.Prefix() // unique per test, so parallel tests do not meet
	var h health
	svc := Service{ID: name + "-w1", Name: name, Address: "127.0.0.1", Port: 8080, TTL: 3 * time.Second,
		Meta: map[string]string{"roles": "api,scheduler"}}
	r := c.Register(svc, h.check)
	if err := r.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	if err := r.Start(testCtx(t)); err == nil {
		t.Error("second Start succeeded")
	}

	eventually(t, "the worker to be passing", func() bool { return workerStatus(t, c, name, svc.ID) == StatusPassing })
	ws, err := c.Workers(testCtx(t), name)
	if err != nil || len(ws) != 1 {
		t.Fatalf("Workers = %+v, %v; want one", ws, err)
	}
	if w := ws[0]; w.Address != "127.0.0.1" || w.Port != 8080 || w.Meta["roles"] != "api,scheduler" {
		t.Errorf("worker = %+v", w)
	}

	// A second worker of the same service, unhealthy from the start.
	var h2 health
	h2.set(errors.New("scheduler stuck for 9s"))
	r2 := c.Register(Service{ID: name + "-w2", Name: name, TTL: 3 * time.Second}, h2.check)
	if err := r2.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r2.Stop)
	eventually(t, "w2 critical", func() bool { return workerStatus(t, c, name, name+"-w2") == StatusCritical })

	h.set(errors.New("scheduler tick stalled"))
	eventually(t, "w1 critical", func() bool { return workerStatus(t, c, name, svc.ID) == StatusCritical })
	h.set(nil)
	eventually(t, "w1 passing again", func() bool { return workerStatus(t, c, name, svc.ID) == StatusPassing })

	r.Stop()
	r.Stop() // idempotent
	eventually(t, "w1 deregistered", func() bool { return workerStatus(t, c, name, svc.ID) == "" })
	if got := workerStatus(t, c, name, name+"-w2"); got != StatusCritical {
		t.Errorf("w2 status %q after w1 left, want critical", got)
	}
	r2.Stop()
	eventually(t, "no workers", func() bool {
		ws, err := c.Workers(testCtx(t), name)
		return err == nil && len(ws) == 0
	})
}

func TestRegistrationWithoutConsul(t *testing.T) {
	parallel(t)
	addr, attempts := hangupAddr(t)
	c, logs := newClient(t, addr)
	r := c.Register(Service{ID: "w", Name: "couponpush-worker", TTL: 30 * time.Millisecond}, nil)
	if err := r.Start(testCtx(t)); err != nil {
		t.Fatalf("Start with Consul down: %v", err)
	}
	eventually(t, "retries", func() bool { return attempts.Load() >= 6 })
	r.Stop()
	if n := logs.count("consul registration failing; retrying", "", nil); n != 1 {
		t.Errorf("failure logged %d times over %d attempts, want once", n, attempts.Load())
	}
	if _, err := c.Workers(testCtx(t), "couponpush-worker"); err == nil {
		t.Error("Workers with Consul down succeeded")
	}
}

func TestRegistrationNeedsIDAndName(t *testing.T) {
	parallel(t)
	c, _ := newClient(t, deadAddr(t))
	for _, svc := range []Service{{Name: "x"}, {ID: "x"}} {
		r := c.Register(svc, nil)
		if err := r.Start(testCtx(t)); err == nil {
			t.Errorf("Start(%+v) succeeded", svc)
		}
		r.Stop()
	}
	c.Register(Service{ID: "a", Name: "b"}, nil).Stop() // Stop without Start
}
