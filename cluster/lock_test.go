package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLockExcludesSecondHolder(t *testing.T) {
	parallel(t)
	c, _ := newClient(t, "")
	ctx := testCtx(t)

	release1, lost1, err := c.Lock(ctx, "rebalance")
	if err != nil {
		t.Fatalf("first Lock: %v", err)
	}

	// A second holder cannot get it while the first holds it.
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	_, _, err = c.Lock(short, "rebalance")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock while held = %v, want DeadlineExceeded", err)
	}

	// Another name is another lock.
	releaseOther, _, err := c.Lock(ctx, "other")
	if err != nil {
		t.Fatalf("Lock of another name: %v", err)
	}
	releaseOther()

	// A waiter gets it once the first releases.
	type result struct {
		release func()
		lost    <-chan struct{}
		err     error
	}
	got := make(chan result, 1)
	go func() {
		r, l, err := c.Lock(ctx, "rebalance")
		got <- result{r, l, err}
	}()
	select {
	case <-lost1:
		t.Fatal("lost closed while the lock is held")
	default:
	}
	release1()
	release1() // idempotent
	select {
	case <-lost1:
	case <-time.After(10 * time.Second):
		t.Fatal("lost not closed after release")
	}
	var r result
	select {
	case r = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("waiter did not get the lock after release")
	}
	if r.err != nil {
		t.Fatalf("waiter Lock: %v", r.err)
	}
	r.release()
}

func TestLockLostWhenKeyDeleted(t *testing.T) {
	parallel(t)
	c, _ := newClient(t, "")
	release, lost, err := c.Lock(testCtx(t), "coordinator")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := c.api.KV().Delete(c.lockKey("coordinator"), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(20 * time.Second):
		t.Fatal("lost not closed after an operator deleted the lock key")
	}
}

func TestLockErrors(t *testing.T) {
	parallel(t)
	c, _ := newClient(t, deadAddr(t))
	if _, _, err := c.Lock(testCtx(t), "x"); err == nil {
		t.Error("Lock with Consul down succeeded")
	}
	if _, _, err := c.Lock(testCtx(t), ""); err == nil {
		t.Error("Lock with an empty name succeeded")
	}
}
