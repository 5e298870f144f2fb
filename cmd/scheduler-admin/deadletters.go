package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"couponpush/push"
	"couponpush/queue"
)

// deadJSON is one dead-lettered push in the JSON of deadletters.
type deadJSON struct {
	Queue  int            `json:"queue"`
	PushID string         `json:"push_id"`
	UserID int64          `json:"user_id"`
	Items  []deadItemJSON `json:"items"`
	At     string         `json:"dead_since"`
	Reason string         `json:"reason"`
}

type deadItemJSON struct {
	TemplateID int64  `json:"template_id"`
	PushAt     string `json:"push_at"`
}

// deadlettersJSON is the JSON shape of deadletters.
type deadlettersJSON struct {
	DeadLetters []deadJSON `json:"dead_letters"`
	Total       int        `json:"total"`
}

// replayJSON is the JSON shape of deadletters replay.
type replayJSON struct {
	Queues []replayedJSON `json:"queues"`
	Total  int            `json:"total"`
}

type replayedJSON struct {
	Queue    int      `json:"queue"`
	PushIDs  []string `json:"push_ids"`
	Replayed int      `json:"replayed"`
}

// pushID is the push id a dead push was logged with and is replayed with.
func pushID(p queue.Push) string {
	keys := make([]push.Key, len(p.Items))
	for i, it := range p.Items {
		keys[i] = push.Key{TemplateID: it.TemplateID, PushAtMs: it.PushAt.UnixMilli()}
	}
	return push.ID(p.UserID, keys)
}

// deadQueues is -queue, or every queue of the recorded layout's span (or
// -queues / N from Consul while none is recorded).
func (a *admin) deadQueues(ctx context.Context, qcl *queue.Client) ([]int, error) {
	if a.opt.queue >= 0 {
		return []int{a.opt.queue}, nil
	}
	st, recorded, err := qcl.LayoutStatus(ctx)
	if err != nil {
		return nil, err
	}
	span := st.Span
	if !recorded {
		if span, err = a.fallbackCount(ctx); err != nil {
			return nil, err
		}
	}
	qs := make([]int, span)
	for i := range qs {
		qs[i] = i
	}
	return qs, nil
}

// readDead lists the dead letters of the queues deadQueues names.
func (a *admin) readDead(ctx context.Context) (*queue.Client, []queue.DeadPush, error) {
	qcl, err := a.needRedis(ctx)
	if err != nil {
		return nil, nil, err
	}
	qs, err := a.deadQueues(ctx, qcl)
	if err != nil {
		return nil, nil, err
	}
	var all []queue.DeadPush
	for _, q := range qs {
		d, err := qcl.DeadLetters(ctx, q)
		if err != nil {
			return nil, nil, err
		}
		all = append(all, d...)
	}
	return qcl, all, nil
}

// cmdDeadletters lists pushes that could not be published, per queue.
func cmdDeadletters(ctx context.Context, a *admin, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (want: deadletters, or deadletters replay [push_id...])", args[0])
	}
	_, dead, err := a.readDead(ctx)
	if err != nil {
		return err
	}
	if a.opt.json {
		out := deadlettersJSON{DeadLetters: []deadJSON{}, Total: len(dead)}
		for _, d := range dead {
			j := deadJSON{Queue: d.Queue, PushID: pushID(d.Push), UserID: d.Push.UserID, At: stamp(d.At), Reason: d.Reason}
			for _, it := range d.Push.Items {
				j.Items = append(j.Items, deadItemJSON{TemplateID: it.TemplateID, PushAt: stamp(it.PushAt)})
			}
			out.DeadLetters = append(out.DeadLetters, j)
		}
		return printJSON(a.out, out)
	}
	if len(dead) == 0 {
		_, err := fmt.Fprintln(a.out, "no dead letters")
		return err
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tPUSH_ID\tUSER\tTEMPLATES\tDUE\tDEAD_SINCE\tREASON")
	for _, d := range dead {
		tids := make([]string, len(d.Push.Items))
		for i, it := range d.Push.Items {
			tids[i] = fmt.Sprint(it.TemplateID)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\n", d.Queue, pushID(d.Push), d.Push.UserID,
			strings.Join(tids, ","), stamp(d.Push.DueAt()), stamp(d.At), d.Reason)
	}
	fmt.Fprintf(tw, "total\t%d\n", len(dead))
	return tw.Flush()
}

// cmdDeadlettersReplay puts dead-lettered pushes back in flight, the named
// ones or (with none named) all of -queue or of every queue. A named id
// that is not in the dead letters fails the command before anything is
// replayed.
func cmdDeadlettersReplay(ctx context.Context, a *admin, args []string) error {
	for _, id := range args {
		if strings.HasPrefix(id, "-") {
			return usagef("unexpected flag %q after the push ids", id)
		}
	}
	qcl, dead, err := a.readDead(ctx)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		want := map[string]bool{}
		for _, id := range args {
			want[id] = true
		}
		dead = slices.DeleteFunc(dead, func(d queue.DeadPush) bool { return !want[pushID(d.Push)] })
		for _, d := range dead {
			delete(want, pushID(d.Push))
		}
		if len(want) > 0 {
			var missing []string
			for id := range want {
				missing = append(missing, id)
			}
			slices.Sort(missing)
			return fmt.Errorf("not in the dead letters: %s (nothing replayed)", strings.Join(missing, ", "))
		}
	}
	byQueue := map[int][]queue.DeadPush{}
	var qs []int
	for _, d := range dead {
		if _, ok := byQueue[d.Queue]; !ok {
			qs = append(qs, d.Queue)
		}
		byQueue[d.Queue] = append(byQueue[d.Queue], d)
	}
	slices.Sort(qs)
	out := replayJSON{Queues: []replayedJSON{}}
	for _, q := range qs {
		n, err := qcl.Replay(ctx, q, byQueue[q])
		if err != nil {
			return err
		}
		r := replayedJSON{Queue: q, Replayed: n}
		for _, d := range byQueue[q] {
			r.PushIDs = append(r.PushIDs, pushID(d.Push))
		}
		out.Queues = append(out.Queues, r)
		out.Total += n
	}
	if a.opt.json {
		return printJSON(a.out, out)
	}
	for _, r := range out.Queues {
		fmt.Fprintf(a.out, "queue %d: %d pushes back in flight: %s\n", r.Queue, r.Replayed, strings.Join(r.PushIDs, " "))
	}
	_, err = fmt.Fprintf(a.out, "replayed %d pushes; the queues' lease holders publish them with the same push ids\n", out.Total)
	return err
}
