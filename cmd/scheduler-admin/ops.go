package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"couponpush/reindex"
)

// pauseJSON is the JSON shape of pause and resume.
type pauseJSON struct {
	Prefix string `json:"redis_prefix"`
	Paused bool   `json:"paused"`
}

// pauseState is what pause and resume set.
type pauseState bool

// The two pause states.
const (
	statePaused  pauseState = true
	stateResumed pauseState = false
)

func cmdPause(ctx context.Context, a *admin, args []string) error {
	return setPaused(ctx, a, args, statePaused)
}
func cmdResume(ctx context.Context, a *admin, args []string) error {
	return setPaused(ctx, a, args, stateResumed)
}

// setPaused sets the pause flag every worker of the prefix follows, then
// reads it back.
func setPaused(ctx context.Context, a *admin, args []string, want pauseState) error {
	paused := bool(want)
	name := map[bool]string{true: "pause", false: "resume"}[paused]
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", name, args[0])
	}
	qcl, err := a.needRedis(ctx)
	if err != nil {
		return err
	}
	set := qcl.Resume
	if paused {
		set = qcl.Pause
	}
	if err := set(ctx); err != nil {
		return err
	}
	now, err := qcl.Paused(ctx)
	if err != nil {
		return err
	}
	if now != paused {
		return fmt.Errorf("the pause flag reads %v right after setting it to %v: another operator changed it", now, paused)
	}
	if a.opt.json {
		return printJSON(a.out, pauseJSON{Prefix: a.opt.redisPrefix, Paused: now})
	}
	if now {
		_, err = fmt.Fprintf(a.out, "paused: workers of %q stop emitting within 100 ms; subscriptions and cancels go on, nothing is lost\n", a.opt.redisPrefix)
	} else {
		_, err = fmt.Fprintf(a.out, "resumed: workers of %q emit again; the backlog goes out oldest first\n", a.opt.redisPrefix)
	}
	return err
}

// rebuildJSON is the JSON shape of rebuild.
type rebuildJSON struct {
	Read      int64       `json:"read"`
	Indexed   int64       `json:"indexed"`
	Present   int64       `json:"present"`
	Taken     int64       `json:"taken"`
	ElapsedMs int64       `json:"elapsed_ms"`
	Layout    *layoutJSON `json:"layout"`
}

// cmdRebuild re-indexes every pending reminder of MySQL into Redis through
// a queue.Router, under the recorded layout (or -queues / N from Consul
// while none is recorded).
func cmdRebuild(ctx context.Context, a *admin, args []string) error {
	if len(args) > 0 {
		return usagef("rebuild takes no arguments, got %q", args[0])
	}
	short, cancel := context.WithTimeout(ctx, a.opt.timeout)
	defer cancel()
	db, err := a.needMySQL(short)
	if err != nil {
		return err
	}
	qcl, err := a.needRedis(short)
	if err != nil {
		return err
	}
	st, recorded, err := qcl.LayoutStatus(short)
	if err != nil {
		return err
	}
	fallback := st.To
	if !recorded {
		if fallback, err = a.fallbackCount(short); err != nil {
			return err
		}
	}
	cancel()
	router := qcl.NewRouter(func() int { return fallback })
	l, err := router.Refresh(ctx)
	if err != nil {
		return err
	}
	if !recorded {
		st.Layout = l
	}
	if !a.opt.json {
		layout := describe(st)
		if !recorded {
			layout = fmt.Sprintf("none recorded in Redis; writing as %d queues", fallback)
		}
		fmt.Fprintf(a.out, "rebuild: re-indexing pending reminders from MySQL (layout: %s)\n", layout)
	}
	ctx, cancelWait := context.WithTimeout(ctx, a.opt.waitTimeout)
	defer cancelWait()
	bar := newMeter(a)
	defer bar.abort()
	t0 := time.Now()
	var lastDone, lastTotal int64
	res, err := reindex.Rebuild(ctx, db, reindex.Routed{Router: router, Client: qcl}, a.opt.batch, func(done, total int64) {
		lastDone, lastTotal = done, max(total, done)
		bar.show(done, lastTotal, "rebuild")
	})
	elapsed := time.Since(t0)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			err = fmt.Errorf("not done within -wait-timeout %v: %d rows read; running it again is safe: %w", a.opt.waitTimeout, res.Read, err)
		}
		return err
	}
	bar.done(lastDone, lastTotal, "rebuild")
	if a.opt.json {
		return printJSON(a.out, rebuildJSON{Read: res.Read, Indexed: res.Indexed, Present: res.Present, Taken: res.Taken,
			ElapsedMs: elapsed.Milliseconds(), Layout: newLayoutJSON(layoutRead{st, recorded})})
	}
	_, err = fmt.Fprintf(a.out, "rebuild done in %v: %d pending rows read; %d indexed, %d already present, %d taken (being published, or sent with the sent-mark not yet in MySQL)\n",
		elapsed.Round(time.Millisecond), res.Read, res.Indexed, res.Present, res.Taken)
	return err
}
