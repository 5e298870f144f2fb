package main

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"couponpush/queue"
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

// cmdUser shows one user's reminders from MySQL with their state in Redis.
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
	out := userJSON{UserID: id, Reminders: []reminderJSON{}}
	byTemplate := map[int64]int{}
	rows, err := db.QueryContext(ctx, `SELECT template_id, push_at, status, version, push_id, sent_at
		FROM subscriptions WHERE user_id = ? ORDER BY push_at, template_id`, id)
	if err != nil {
		return fmt.Errorf("mysql: read user %d: %w", id, err)
	}
	for rows.Next() {
		var r reminderJSON
		var pushAt time.Time
		var pushID sql.NullString
		var sentAt sql.NullTime
		if err := rows.Scan(&r.TemplateID, &pushAt, &r.Status, &r.Version, &pushID, &sentAt); err != nil {
			rows.Close()
			return fmt.Errorf("mysql: read user %d: %w", id, err)
		}
		r.PushAt, r.PushID, r.Redis = stamp(pushAt), pushID.String, []redisEntryJSON{}
		if sentAt.Valid {
			r.SentAt = stamp(sentAt.Time)
		}
		byTemplate[r.TemplateID] = len(out.Reminders)
		out.Reminders = append(out.Reminders, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("mysql: read user %d: %w", id, err)
	}

	st, recorded, err := qcl.LayoutStatus(ctx)
	if err != nil {
		return err
	}
	if !recorded {
		n, err := a.fallbackCount(ctx)
		if err != nil {
			return err
		}
		st.Layout = queue.Layout{From: n, To: n, Span: n}
	}
	out.Layout = newLayoutJSON(layoutRead{st, recorded})
	out.Queues = st.Homes(id)
	for _, q := range out.Queues {
		es, inTransit, err := qcl.UserRecord(ctx, q, id)
		if err != nil {
			return err
		}
		out.InTransit = out.InTransit || inTransit
		for _, e := range es {
			i, ok := byTemplate[e.TemplateID]
			if !ok {
				i = len(out.Reminders)
				byTemplate[e.TemplateID] = i
				out.Reminders = append(out.Reminders, reminderJSON{TemplateID: e.TemplateID, Redis: []redisEntryJSON{}})
			}
			out.Reminders[i].Redis = append(out.Reminders[i].Redis, redisEntryJSON{
				Queue: q, State: e.State.String(), Version: e.Version, PushAt: stamp(e.PushAt), InTransit: e.InTransit,
			})
		}
	}
	for i := range out.Reminders {
		out.Reminders[i].Note = note(out.Reminders[i])
	}
	if a.opt.json {
		return printJSON(a.out, out)
	}
	return printUser(a, out, layoutRead{st, recorded})
}

// note explains a reminder whose MySQL row and Redis entry disagree in a
// way an operator may act on; "" when they agree or the gap is the normal
// marking lag.
func note(r reminderJSON) string {
	states := make([]string, len(r.Redis))
	var newest int64
	for i, e := range r.Redis {
		states[i] = e.State
		newest = max(newest, e.Version)
	}
	switch {
	case r.Status == "":
		return "in Redis only (no MySQL row)"
	case r.Status == "pending" && len(r.Redis) == 0:
		return "not indexed: `scheduler-admin rebuild` re-indexes it"
	case r.Status == "pending" && (slices.Contains(states, "taken") || slices.Contains(states, "taken-moved")):
		return "taken: being published, or sent with its sent-mark not in MySQL yet"
	case r.Status == "pending" && newest < r.Version:
		return "Redis holds an older version: `scheduler-admin rebuild` updates it"
	case r.Status == "cancelled" && slices.Contains(states, "pending"):
		return "cancelled in MySQL but pending in Redis"
	}
	return ""
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
