package cluster

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestLockedJobExcludesSecondWorker runs two LockedJobs of one name on two
// clients (two workers): while one runs, the other's runs find the lock
// taken and skip; once the first run returns, runs go on.
func TestLockedJobExcludesSecondWorker(t *testing.T) {
	parallel(t)
	c1, logs1 := newClient(t, "")
	c2, logs2 := newClient(t, "")
	c2.prefix = c1.prefix // one deployment
	ctx := testCtx(t)

	var running, overlaps, runs atomic.Int32
	first := make(chan int, 1)
	hold := make(chan struct{})
	job := func(id int) func(context.Context) {
		return func(ctx context.Context) {
			if running.Add(1) > 1 {
				overlaps.Add(1)
			}
			defer running.Add(-1)
			if runs.Add(1) == 1 {
				first <- id
				select { // hold the lock until the test lets go
				case <-hold:
				case <-ctx.Done():
				}
			}
		}
	}
	j1 := c1.NewLockedJob("excl", time.Second, job(1), nil)
	j2 := c2.NewLockedJob("excl", time.Second, job(2), nil)
	j1.wait, j2.wait = 300*time.Millisecond, 300*time.Millisecond
	for _, j := range []*LockedJob{j1, j2} {
		if err := j.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer j.Stop()
	}

	var holder int
	select {
	case holder = <-first:
	case <-time.After(20 * time.Second):
		t.Fatal("no run started")
	}
	other := logs2
	if holder == 2 {
		other = logs1
	}
	eventually(t, "the other worker to find the lock taken", func() bool {
		return other.count("locked job skipped: lock not taken", "job", "excl") >= 1
	})
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d runs while the first holds the lock, want 1", n)
	}
	close(hold)
	eventually(t, "runs to go on after the first returned", func() bool { return runs.Load() >= 3 })
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d runs overlapped another", n)
	}
}

// TestLockedJobLostLockCancelsRun deletes the lock's key under a run (an
// operator, or the session expiring): the run's context ends.
func TestLockedJobLostLockCancelsRun(t *testing.T) {
	parallel(t)
	c, logs := newClient(t, "")
	started := make(chan struct{}, 1)
	cancelled := make(chan struct{}, 1)
	var first atomic.Bool
	j := c.NewLockedJob("lost", time.Second, func(ctx context.Context) {
		if !first.CompareAndSwap(false, true) {
			return // only the first run waits
		}
		started <- struct{}{}
		<-ctx.Done()
		cancelled <- struct{}{}
	}, nil)
	if err := j.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	defer j.Stop()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("no run started")
	}
	if _, err := c.api.KV().Delete(c.lockKey("lost"), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cancelled:
	case <-time.After(20 * time.Second):
		t.Fatal("the run's context did not end when its lock was lost")
	}
	if n := logs.count("locked job lost its lock; cancelling the run", "job", "lost"); n != 1 {
		t.Errorf("lost lock logged %d times, want 1", n)
	}
}

// TestLockedJobStopWaitsForRun stops a job with a run in hand: Stop cancels
// the run, returns only after it did, and is idempotent (and safe without
// Start).
func TestLockedJobStopWaitsForRun(t *testing.T) {
	parallel(t)
	c, _ := newClient(t, "")
	started := make(chan struct{}, 1)
	cancelled := make(chan struct{})
	proceed := make(chan struct{})
	var first, finished atomic.Bool
	j := c.NewLockedJob("stop", time.Second, func(ctx context.Context) {
		if !first.CompareAndSwap(false, true) {
			return // only the first run waits
		}
		started <- struct{}{}
		<-ctx.Done()
		close(cancelled)
		<-proceed
		finished.Store(true)
	}, nil)
	if err := j.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("no run started")
	}
	stopped := make(chan struct{})
	go func() {
		j.Stop()
		close(stopped)
	}()
	select {
	case <-cancelled:
	case <-time.After(20 * time.Second):
		t.Fatal("Stop did not cancel the run")
	}
	select {
	case <-stopped:
		t.Fatal("Stop returned while the run is still going")
	default:
	}
	close(proceed)
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("Stop did not return after the run did")
	}
	if !finished.Load() {
		t.Fatal("Stop returned before the run finished")
	}
	j.Stop() // idempotent
	if err := j.Start(testCtx(t)); err == nil {
		t.Error("Start after Stop succeeded")
	}
	unstarted := c.NewLockedJob("never", time.Second, func(context.Context) {}, nil)
	unstarted.Stop()
	unstarted.Stop()
}

func TestLockedJobStartErrors(t *testing.T) {
	parallel(t)
	c, _ := newClient(t, deadAddr(t))
	run := func(context.Context) {}
	for _, tc := range []struct {
		name string
		job  *LockedJob
	}{
		{"empty name", c.NewLockedJob("", time.Second, run, nil)},
		{"zero period", c.NewLockedJob("x", 0, run, nil)},
		{"nil run", c.NewLockedJob("x", time.Second, nil, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.job.Start(testCtx(t)); err == nil {
				tc.job.Stop()
				t.Error("Start succeeded")
			}
		})
	}
}
