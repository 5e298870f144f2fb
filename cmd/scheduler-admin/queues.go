package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"couponpush/cluster"
	"couponpush/queue"
)

// queueCount is the JSON shape of the queue count key.
type queueCount struct {
	Key         string `json:"key"`
	Found       bool   `json:"found"`
	Count       int    `json:"count,omitempty"`
	ModifyIndex uint64 `json:"modify_index,omitempty"`
	Error       string `json:"error,omitempty"`
}

// layoutJSON is the JSON shape of a recorded layout.
type layoutJSON struct {
	Recorded   bool   `json:"recorded"` // false: none in Redis, the counts are the fallback N
	Generation int64  `json:"generation"`
	From       int    `json:"from"`
	To         int    `json:"to"`
	Span       int    `json:"span"`
	Stable     bool   `json:"stable"`
	Moved      int64  `json:"moved"`
	Total      int64  `json:"total"`
	Began      string `json:"began,omitempty"`
	Finished   string `json:"finished,omitempty"`
}

// layoutRead is one read of the layout in Redis: recorded is false when
// none was recorded yet, and the status is then the one assumed.
type layoutRead struct {
	queue.LayoutStatus
	recorded bool
}

func newLayoutJSON(r layoutRead) *layoutJSON {
	st, recorded := r.LayoutStatus, r.recorded
	l := &layoutJSON{Recorded: recorded, Generation: st.Gen, From: st.From, To: st.To, Span: st.Span,
		Stable: st.Stable(), Moved: st.Moved, Total: st.Total}
	if !st.Began.IsZero() {
		l.Began = stamp(st.Began)
	}
	if !st.Finished.IsZero() {
		l.Finished = stamp(st.Finished)
	}
	return l
}

// describe is one line on a layout and its move.
func describe(st queue.LayoutStatus) string {
	if !st.Stable() {
		return fmt.Sprintf("moving %d -> %d queues (generation %d, span %d): %s users moved",
			st.From, st.To, st.Gen, st.Span, ratio(st.Moved, st.Total))
	}
	s := fmt.Sprintf("%d queues (generation %d, span %d)", st.To, st.Gen, st.Span)
	if !st.Finished.IsZero() {
		s += fmt.Sprintf("; last move finished %s after %s, %d users moved",
			stamp(st.Finished), st.Finished.Sub(st.Began).Round(time.Millisecond), st.Moved)
	}
	if st.Span > st.To {
		s += fmt.Sprintf("; queues %d..%d still drain", st.To, st.Span-1)
	}
	return s
}

func ratio(done, total int64) string {
	if total <= 0 {
		return strconv.FormatInt(done, 10)
	}
	return fmt.Sprintf("%d/%d (%d%%)", done, total, min(100, done*100/total))
}

// backlogJSON is a queue's backlog per priority (queue.QueueInfo.Backlog).
type backlogJSON struct {
	High   int64 `json:"high"`
	Normal int64 `json:"normal"`
	Low    int64 `json:"low"`
}

// queueJSON is the JSON shape of one queue.
type queueJSON struct {
	Queue       int         `json:"queue"`
	Users       int64       `json:"users"`
	DueUsers    int64       `json:"due_users"`
	EarliestDue string      `json:"earliest_due,omitempty"`
	LagMs       int64       `json:"lag_ms"`
	InFlight    int64       `json:"in_flight"`
	Backlog     backlogJSON `json:"backlog"`              // users due and not taken, per priority
	Ready       int64       `json:"ready"`                // chunks prepared ahead of due, not begun
	NextReady   string      `json:"next_ready,omitempty"` // the earliest one's publish time
	Marks       int64       `json:"marks"`
	InTransit   int64       `json:"in_transit"`
	LeaseHeld   bool        `json:"lease_held"`
	LeaseHolder string      `json:"lease_holder,omitempty"`
	LeaseTTLMs  int64       `json:"lease_ttl_ms,omitempty"`
	Epoch       string      `json:"epoch,omitempty"`
}

// queuesJSON is the JSON shape of the queues command.
type queuesJSON struct {
	queueCount
	RedisTime string      `json:"redis_time"`
	Paused    bool        `json:"paused"`
	Layout    *layoutJSON `json:"layout"`
	Queues    []queueJSON `json:"queues"`
}

// cmdQueues shows N from Consul, the recorded layout and every queue that
// may hold work.
func cmdQueues(ctx context.Context, a *admin, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (want: queues, or queues set M)", args[0])
	}
	c, err := a.needConsul()
	if err != nil {
		return err
	}
	qcl, err := a.needRedis(ctx)
	if err != nil {
		return err
	}
	n, idx, found, err := c.QueueCount(ctx)
	bad := errors.Is(err, cluster.ErrBadQueueCount)
	if err != nil && !bad {
		return err
	}
	qc := queueCount{Key: c.QueueCountKey(), Found: found, Count: n, ModifyIndex: idx}
	if bad {
		qc.Error = err.Error()
	}
	st, recorded, err := qcl.LayoutStatus(ctx)
	if err != nil {
		return err
	}
	span := st.Span
	if !recorded {
		span = a.opt.queues
		if span == 0 && found && !bad {
			span = n
		}
		st.Layout = queue.Layout{From: span, To: span, Span: span}
	}
	now, err := qcl.Time(ctx)
	if err != nil {
		return err
	}
	paused, err := qcl.Paused(ctx)
	if err != nil {
		return err
	}
	infos, err := qcl.Inspect(ctx, span)
	if err != nil {
		return err
	}

	out := queuesJSON{queueCount: qc, RedisTime: stamp(now), Paused: paused, Queues: []queueJSON{}}
	if recorded || span > 0 {
		out.Layout = newLayoutJSON(layoutRead{st, recorded})
	}
	for _, q := range infos {
		j := queueJSON{Queue: q.Queue, Users: q.Users, DueUsers: q.DueUsers, InFlight: q.InFlight, Ready: q.Ready, Marks: q.Marks,
			InTransit: q.InTransit, LeaseHeld: q.LeaseHeld, LeaseHolder: q.LeaseHolder, LeaseTTLMs: q.LeaseTTL.Milliseconds(), Epoch: q.Epoch}
		j.Backlog = backlogJSON{High: q.Backlog[0], Normal: q.Backlog[1], Low: q.Backlog[2]}
		if !q.NextReady.IsZero() {
			j.NextReady = stamp(q.NextReady)
		}
		if !q.EarliestDue.IsZero() {
			j.EarliestDue = stamp(q.EarliestDue)
			j.LagMs = max(0, now.Sub(q.EarliestDue).Milliseconds())
		}
		out.Queues = append(out.Queues, j)
	}
	if a.opt.json {
		if err := printJSON(a.out, out); err != nil {
			return err
		}
	} else if err := printQueues(a, out, layoutRead{st, recorded}); err != nil {
		return err
	}
	if bad {
		return fmt.Errorf("%s holds a bad value (%s); fix it with: scheduler-admin queues set M", qc.Key, qc.Error)
	}
	return nil
}

func printQueues(a *admin, out queuesJSON, r layoutRead) error {
	st, recorded := r.LayoutStatus, r.recorded
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tN\tMODIFY_INDEX")
	switch {
	case !out.Found:
		fmt.Fprintf(tw, "%s\t(absent: workers use their default_queue_count)\t-\n", out.Key)
	case out.Error != "":
		fmt.Fprintf(tw, "%s\t(bad value: workers keep their last good N)\t%d\n", out.Key, out.ModifyIndex)
	default:
		fmt.Fprintf(tw, "%s\t%d\t%d\n", out.Key, out.Count, out.ModifyIndex)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case recorded:
		fmt.Fprintf(a.out, "\nlayout: %s\n", describe(st))
	case st.Span > 0:
		fmt.Fprintf(a.out, "\nlayout: none recorded in Redis; showing %d queues\n", st.Span)
	default:
		fmt.Fprintf(a.out, "\nlayout: none recorded in Redis, and no N to show queues for (pass -queues N)\n")
	}
	state := "no"
	if out.Paused {
		state = "yes: workers emit nothing until `scheduler-admin resume`"
	}
	fmt.Fprintf(a.out, "paused: %s\nredis time: %s\n", state, out.RedisTime)
	if len(out.Queues) == 0 {
		return nil
	}
	fmt.Fprintln(a.out)
	fmt.Fprintln(tw, "QUEUE\tUSERS\tDUE\tEARLIEST_DUE\tLAG\tBACKLOG_H/N/L\tIN_FLIGHT\tREADY\tMARKS\tIN_TRANSIT\tLEASE")
	var tot queueJSON
	var maxLag int64
	for _, q := range out.Queues {
		due, lag := "-", "-"
		if q.EarliestDue != "" {
			due, lag = q.EarliestDue, (time.Duration(q.LagMs) * time.Millisecond).String()
		}
		lease := "-"
		if q.LeaseHeld {
			holder := q.LeaseHolder
			if holder == "" {
				holder = "(anonymous)"
			}
			lease = fmt.Sprintf("%s (%s left)", holder, (time.Duration(q.LeaseTTLMs) * time.Millisecond).Round(time.Millisecond))
		}
		b := q.Backlog
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%d/%d/%d\t%d\t%d\t%d\t%d\t%s\n", q.Queue, q.Users, q.DueUsers, due, lag, b.High, b.Normal, b.Low,
			q.InFlight, q.Ready, q.Marks, q.InTransit, lease)
		tot.Users += q.Users
		tot.DueUsers += q.DueUsers
		tot.InFlight += q.InFlight
		tot.Ready += q.Ready
		tot.Backlog.High += b.High
		tot.Backlog.Normal += b.Normal
		tot.Backlog.Low += b.Low
		tot.Marks += q.Marks
		tot.InTransit += q.InTransit
		maxLag = max(maxLag, q.LagMs)
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t\tmax %s\t%d/%d/%d\t%d\t%d\t%d\t%d\t\n", tot.Users, tot.DueUsers, time.Duration(maxLag)*time.Millisecond,
		tot.Backlog.High, tot.Backlog.Normal, tot.Backlog.Low, tot.InFlight, tot.Ready, tot.Marks, tot.InTransit)
	return tw.Flush()
}

// setJSON is the JSON shape of queues set.
type setJSON struct {
	Key     string      `json:"key"`
	From    string      `json:"from"`
	To      int         `json:"to"`
	Changed bool        `json:"changed"`
	Waited  bool        `json:"waited"`
	Layout  *layoutJSON `json:"layout,omitempty"`
}

// cmdQueuesSet sets N to M with check-and-set against the value just read,
// then, unless -wait=false, follows the move in Redis until the recorded
// layout is M queues, stable, and newer than when it began.
func cmdQueuesSet(ctx context.Context, a *admin, args []string) error {
	if len(args) != 1 {
		return usagef("queues set takes one argument, the new queue count M")
	}
	m, err := cluster.ParseQueueCount([]byte(args[0]))
	if err != nil {
		return usageError{err.Error()}
	}
	c, err := a.needConsul()
	if err != nil {
		return err
	}
	short, cancel := context.WithTimeout(ctx, a.opt.timeout)
	defer cancel()
	var qcl *queue.Client
	var start queue.LayoutStatus
	var startFound bool
	if a.opt.wait {
		if qcl, err = a.needRedis(short); err != nil {
			return err
		}
		if start, startFound, err = qcl.LayoutStatus(short); err != nil {
			return err
		}
	}
	old, idx, found, err := c.QueueCount(short)
	if err != nil && !errors.Is(err, cluster.ErrBadQueueCount) {
		return err
	}
	from := "absent"
	switch {
	case err != nil:
		from = "bad value"
	case found:
		from = strconv.Itoa(old)
	}
	changed := !(found && err == nil && old == m)
	if changed {
		ok, err := c.SetQueueCount(short, m, idx)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("the queue count changed while this command ran; nothing written, look and try again")
		}
	}
	cancel()
	res := setJSON{Key: c.QueueCountKey(), From: from, To: m, Changed: changed, Waited: a.opt.wait}
	if !a.opt.json {
		if changed {
			fmt.Fprintf(a.out, "%s: %s -> %d\n", res.Key, from, m)
		} else {
			fmt.Fprintf(a.out, "%s is already %d; nothing changed\n", res.Key, m)
		}
	}
	if !a.opt.wait {
		if a.opt.json {
			return printJSON(a.out, res)
		}
		return nil
	}
	st, err := waitMove(ctx, a, qcl, m, layoutRead{start, startFound})
	if err != nil {
		return err
	}
	res.Layout = newLayoutJSON(layoutRead{st, true})
	if a.opt.json {
		return printJSON(a.out, res)
	}
	_, err = fmt.Fprintf(a.out, "done: %s\n", describe(st))
	return err
}

// pollEvery is how often queues set reads the layout while it waits.
const pollEvery = 100 * time.Millisecond

// waitMove polls the recorded layout until it is m queues and stable, and
// either newer than start or start already was m queues: then the move
// that the write asked for (or the one running for m) is done.
func waitMove(ctx context.Context, a *admin, qcl *queue.Client, m int, from layoutRead) (queue.LayoutStatus, error) {
	start, startFound := from.LayoutStatus, from.recorded
	ctx, cancel := context.WithTimeout(ctx, a.opt.waitTimeout)
	defer cancel()
	already := startFound && start.To == m
	bar := newMeter(a)
	defer bar.abort()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var last queue.LayoutStatus
	var seen bool
	var lastErr error
	for polls := 0; ; polls++ {
		// About once a second: has someone set another N meanwhile? Then
		// this move is not the one workers will finish.
		if polls%10 == 9 {
			if c, err := a.needConsul(); err == nil {
				if n, _, found, err := c.QueueCount(ctx); err == nil && found && n != m {
					return last, fmt.Errorf("the queue count in Consul changed to %d while waiting for %d (someone else set it); workers move to %d: watch with `scheduler-admin queues`", n, m, n)
				}
			}
		}
		st, found, err := qcl.LayoutStatus(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			// Keep trying until the deadline: a blip of Redis does not stop the move.
			lastErr = err
			bar.show(0, 0, fmt.Sprintf("cannot read the layout (%v); retrying", err))
		case err == nil && found:
			lastErr = nil
			last, seen = st, true
			if st.Stable() && st.To == m && (st.Gen > start.Gen || !startFound || already) {
				bar.done(st.Moved, st.Total, describe(st))
				return st, nil
			}
			if st.Stable() {
				bar.show(0, 0, fmt.Sprintf("waiting for a worker to begin the move (layout: %s)", describe(st)))
			} else {
				bar.show(st.Moved, st.Total, fmt.Sprintf("moving %d -> %d queues (generation %d)", st.From, st.To, st.Gen))
			}
		case err == nil:
			bar.show(0, 0, "waiting for a worker to record a layout")
		}
		select {
		case <-ctx.Done():
			msg := "no layout recorded in Redis"
			if seen {
				msg = "layout: " + describe(last)
			}
			if lastErr != nil {
				msg += "; last read failed: " + lastErr.Error()
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return last, fmt.Errorf("the queue count is %d in Consul, but the move did not finish within %v (%s); workers go on with it: watch with `scheduler-admin queues`", m, a.opt.waitTimeout, msg)
			}
			return last, fmt.Errorf("stopped waiting (%s): %w", msg, ctx.Err())
		case <-tick.C:
		}
	}
}

// workerJSON is the JSON shape of one worker.
type workerJSON struct {
	ID      string            `json:"id"`
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Status  string            `json:"status"`
	Meta    map[string]string `json:"meta"`
}

// cmdWorkers lists the registered workers.
func cmdWorkers(ctx context.Context, a *admin, args []string) error {
	if len(args) > 0 {
		return usagef("workers takes no arguments, got %q", args[0])
	}
	c, err := a.needConsul()
	if err != nil {
		return err
	}
	ws, err := c.Workers(ctx, a.opt.service)
	if err != nil {
		return err
	}
	if a.opt.json {
		out := make([]workerJSON, 0, len(ws))
		for _, w := range ws {
			out = append(out, workerJSON(w))
		}
		return printJSON(a.out, out)
	}
	if len(ws) == 0 {
		_, err := fmt.Fprintf(a.out, "no workers registered as %q\n", a.opt.service)
		return err
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tSTATUS\tMETA")
	for _, w := range ws {
		var meta []string
		for _, k := range slices.Sorted(maps.Keys(w.Meta)) {
			meta = append(meta, k+"="+w.Meta[k])
		}
		addr := w.Address
		if w.Port != 0 {
			addr += ":" + strconv.Itoa(w.Port)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", w.ID, addr, w.Status, strings.Join(meta, " "))
	}
	return tw.Flush()
}
