package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// DefaultLockWait is how long a LockedJob's run waits for its lock before
// giving up on that period: another worker holds it, or Consul is away.
const DefaultLockWait = 2 * time.Second

// LockedJob is a periodic job that runs only while it holds its Consul
// lock, so that one worker of the cluster runs it at a time. Each run takes
// the lock called Name (giving up after DefaultLockWait and trying again
// the next period), runs with a context that is cancelled when the lock is
// lost, and releases the lock when it returns.
type LockedJob struct {
	c     *Client
	name  string
	every time.Duration
	run   func(context.Context)
	log   *slog.Logger
	wait  time.Duration // lock wait; tests shorten it before Start

	mu      sync.Mutex
	started bool
	stopped bool
	cron    *cron.Cron
	cancel  context.CancelFunc
}

// NewLockedJob prepares the job name (also its lock's name), run every
// period (robfig/cron's constant delay: rounded to whole seconds, at least
// one). run must return soon after its context ends. A nil logger means
// the client's. Nothing runs until Start.
func (c *Client) NewLockedJob(name string, every time.Duration, run func(context.Context), log *slog.Logger) *LockedJob {
	if log == nil {
		log = c.logger
	}
	return &LockedJob{
		c: c, name: name, every: every, run: run, wait: DefaultLockWait,
		log: log.With(slog.String("job", name)),
	}
}

// Name returns the job's name, which is also its lock's name.
func (j *LockedJob) Name() string { return j.name }

// Start schedules the job. Runs go on until Stop, not until ctx ends
// (values of ctx are kept), so the worker stops its parts in its own
// order. Start fails for an empty name, a non-positive period, a nil run or
// a second call.
func (j *LockedJob) Start(ctx context.Context) error {
	switch {
	case j.name == "":
		return errors.New("locked job: empty name")
	case j.every <= 0:
		return errors.New("locked job " + j.name + ": period must be positive")
	case j.run == nil:
		return errors.New("locked job " + j.name + ": nil run")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.started || j.stopped {
		return errors.New("locked job " + j.name + ": already started")
	}
	j.started = true
	jobCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	j.cancel = cancel
	j.cron = cron.New(cron.WithLocation(time.UTC))
	j.cron.Schedule(cron.Every(j.every), cron.FuncJob(func() { j.once(jobCtx) }))
	j.cron.Start()
	return nil
}

// once is one run: take the lock, run under it, release it.
func (j *LockedJob) once(ctx context.Context) {
	lockCtx, stop := context.WithTimeout(ctx, j.wait)
	release, lost, err := j.c.Lock(lockCtx, j.name)
	stop()
	if err != nil {
		// Another worker runs it, or Consul is away: next period.
		j.log.Debug("locked job skipped: lock not taken", slog.Any("err", err))
		return
	}
	defer release()
	runCtx, cancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-lost:
			if runCtx.Err() == nil {
				j.log.Warn("locked job lost its lock; cancelling the run")
				cancel()
			}
		case <-runCtx.Done():
		}
	}()
	defer func() { cancel(); <-watched }()
	j.run(runCtx)
}

// Stop stops scheduling, cancels a running run and waits for it to
// return. It is idempotent and safe without Start.
func (j *LockedJob) Stop() {
	j.mu.Lock()
	if j.stopped {
		j.mu.Unlock()
		return
	}
	j.stopped = true
	c, cancel := j.cron, j.cancel
	j.mu.Unlock()
	if c == nil {
		return
	}
	cancel()
	<-c.Stop().Done()
}
