package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"couponpush/trace"
)

// redisEntryJSON is one entry of a user's record in Redis.
type redisEntryJSON struct {
	Queue     int    `json:"queue"`
	State     string `json:"state"` // pending | cancelled | taken | taken-moved
	Version   int64  `json:"version"`
	PushAt    string `json:"push_at"`
	InTransit bool   `json:"in_transit"` // in the queue's moving hash: between queues while N changes
}

// reminderJSON is one reminder: its MySQL row (status "" when MySQL has
// none) joined with what Redis holds for it.
type reminderJSON struct {
	TemplateID int64            `json:"template_id"`
	Status     string           `json:"status,omitempty"` // pending | sent | cancelled
	PushAt     string           `json:"push_at,omitempty"`
	Version    int64            `json:"version,omitempty"`
	PushID     string           `json:"push_id,omitempty"`
	SentAt     string           `json:"sent_at,omitempty"`
	Redis      []redisEntryJSON `json:"redis"`
	Note       string           `json:"note,omitempty"`
}

// userJSON is the JSON shape of the user command.
type userJSON struct {
	UserID    int64          `json:"user_id"`
	Layout    *layoutJSON    `json:"layout"`
	Queues    []int          `json:"queues"` // where its record may be under the layout
	InTransit bool           `json:"in_transit"`
	Reminders []reminderJSON `json:"reminders"`
}

// cmdUser shows one user's reminders from MySQL with their state in Redis
// (package trace reads them).
func cmdUser(ctx context.Context, a *admin, args []string) error {
	if len(args) != 1 {
		return usagef("user takes one argument, the user ID")
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id <= 0 {
		return usagef("user ID %q is not a positive 64-bit integer", args[0])
	}
	db, err := a.needMySQL(ctx)
	if err != nil {
		return err
	}
	qcl, err := a.needRedis(ctx)
	if err != nil {
		return err
	}
	u, err := trace.Read(ctx, db, qcl, a.fallbackCount, id)
	if err != nil {
		return err
	}
	read := layoutRead{u.Layout, u.Recorded}
	out := userJSON{UserID: id, Layout: newLayoutJSON(read), Queues: u.Queues, InTransit: u.InTransit, Reminders: []reminderJSON{}}
	for _, r := range u.Reminders {
		j := reminderJSON{TemplateID: r.TemplateID, Status: r.Status, Version: r.Version, PushID: r.PushID, Redis: []redisEntryJSON{}, Note: r.Note}
		if !r.PushAt.IsZero() {
			j.PushAt = stamp(r.PushAt)
		}
		if !r.SentAt.IsZero() {
			j.SentAt = stamp(r.SentAt)
		}
		for _, e := range r.Redis {
			j.Redis = append(j.Redis, redisEntryJSON{Queue: e.Queue, State: e.State.String(), Version: e.Version, PushAt: stamp(e.PushAt), InTransit: e.InTransit})
		}
		out.Reminders = append(out.Reminders, j)
	}
	if a.opt.json {
		return printJSON(a.out, out)
	}
	return printUser(a, out, read)
}

func printUser(a *admin, out userJSON, r layoutRead) error {
	st, recorded := r.LayoutStatus, r.recorded
	qs := make([]string, len(out.Queues))
	for i, q := range out.Queues {
		qs[i] = strconv.Itoa(q)
	}
	layout := describe(st)
	if !recorded {
		layout = fmt.Sprintf("none recorded in Redis; %d queues assumed", st.To)
	}
	fmt.Fprintf(a.out, "user %d\nlayout: %s\nqueue: %s", out.UserID, layout, strings.Join(qs, " then "))
	if len(qs) > 1 {
		fmt.Fprint(a.out, " (its old queue until the move takes it, then its new one)")
	}
	transit := "no"
	if out.InTransit {
		transit = "yes (between queues while N changes)"
	}
	fmt.Fprintf(a.out, "\nin transit: %s\n\n", transit)
	if len(out.Reminders) == 0 {
		_, err := fmt.Fprintln(a.out, "no reminders in MySQL or Redis")
		return err
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TEMPLATE\tPUSH_AT\tSTATUS\tVERSION\tPUSH_ID\tSENT_AT\tQUEUE\tREDIS\tNOTE")
	for _, r := range out.Reminders {
		queueCol, redisCol := "-", "absent"
		if len(r.Redis) > 0 {
			var qs, ss []string
			for _, e := range r.Redis {
				qs = append(qs, strconv.Itoa(e.Queue))
				s := fmt.Sprintf("%s v%d", e.State, e.Version)
				if e.InTransit {
					s += " in transit"
				}
				if e.PushAt != r.PushAt {
					s += " at " + e.PushAt
				}
				ss = append(ss, s)
			}
			queueCol, redisCol = strings.Join(qs, ","), strings.Join(ss, ", ")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.TemplateID, dash(r.PushAt), dash(r.Status),
			dash(strconv.FormatInt(r.Version, 10)), dash(r.PushID), dash(r.SentAt), queueCol, redisCol, r.Note)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" || s == "0" {
		return "-"
	}
	return s
}
