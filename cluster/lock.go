package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// Lock timings; variables so tests can shorten them.
var (
	// lockSessionTTL is the TTL of the session behind a lock: a holder that
	// dies loses the lock this long (plus the lock delay) later.
	lockSessionTTL = 15 * time.Second
	// lockWaitTime is how long one blocking wait for a held lock lasts; it
	// bounds how quickly a cancelled Lock returns.
	lockWaitTime = time.Second
	// releaseTimeout bounds how long release waits for Consul.
	releaseTimeout = 5 * time.Second
)

// Lock takes the cluster-wide lock called name (its KV key is
// <prefix>/locks/<name>), waiting while another session holds it, until ctx
// ends. It is for the one coordinator of a cluster-wide job, such as moving
// users when N changes.
//
// lost is closed when the lock is lost (its session expired, Consul became
// unreachable, an operator deleted the key) and also after release; the
// holder must stop its work when lost closes. Call release exactly when
// done, even after lost closed: it frees the key and ends the session.
// release is safe to call more than once.
func (c *Client) Lock(ctx context.Context, name string) (release func(), lost <-chan struct{}, err error) {
	if name == "" {
		return nil, nil, errors.New("consul lock: empty name")
	}
	key := c.lockKey(name)
	sessions := c.api.Session()
	session, _, err := sessions.Create(&api.SessionEntry{
		Name:     "couponpush lock " + key,
		TTL:      lockSessionTTL.String(),
		Behavior: api.SessionBehaviorRelease,
	}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return nil, nil, fmt.Errorf("consul lock %s: create session: %w", key, err)
	}

	// Renew the session until release; RenewPeriodic destroys it when
	// renewDone closes, or gives up at once when sessionCtx is cancelled
	// (Consul not answering within releaseTimeout).
	renewDone := make(chan struct{})
	renewed := make(chan struct{})
	sessionCtx, cancelSession := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer close(renewed)
		opts := (&api.WriteOptions{}).WithContext(sessionCtx)
		_ = sessions.RenewPeriodic(lockSessionTTL.String(), session, opts, renewDone)
	}()
	endSession := sync.OnceFunc(func() {
		defer cancelSession()
		close(renewDone)
		t := time.NewTimer(releaseTimeout)
		defer t.Stop()
		select {
		case <-renewed:
			return
		case <-t.C:
		}
		cancelSession()
		<-renewed
	})

	l, err := c.api.LockOpts(&api.LockOptions{
		Key:          key,
		Session:      session,
		LockWaitTime: lockWaitTime,
	})
	if err != nil {
		endSession()
		return nil, nil, fmt.Errorf("consul lock %s: %w", key, err)
	}

	// api.Lock takes a stop channel, not a context.
	stop := make(chan struct{})
	acquired := make(chan struct{})
	var bridge sync.WaitGroup
	bridge.Go(func() {
		select {
		case <-ctx.Done():
			close(stop)
		case <-acquired:
		}
	})
	lostCh, err := l.Lock(stop)
	close(acquired)
	bridge.Wait()

	if err != nil {
		endSession()
		return nil, nil, fmt.Errorf("consul lock %s: %w", key, err)
	}
	release = sync.OnceFunc(func() {
		if err := l.Unlock(); err != nil && !errors.Is(err, api.ErrLockNotHeld) {
			c.logger.Warn("consul lock release failed; the session is destroyed anyway", slog.String("lock", key), slog.Any("err", err))
		}
		// The lock's monitor returns once it sees the release.
		t := time.NewTimer(releaseTimeout)
		defer t.Stop()
		select {
		case <-lostCh:
		case <-t.C:
		}
		endSession()
	})
	if lostCh == nil { // stopped before acquiring
		endSession()
		return nil, nil, fmt.Errorf("consul lock %s: %w", key, context.Cause(ctx))
	}
	if ctx.Err() != nil { // acquired just as ctx ended: give it back
		release()
		return nil, nil, fmt.Errorf("consul lock %s: %w", key, context.Cause(ctx))
	}
	// Debug: periodic jobs take their lock every few seconds.
	c.logger.Debug("consul lock acquired", slog.String("lock", key))
	return release, lostCh, nil
}
