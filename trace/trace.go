package trace

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"couponpush/queue"
)

// Querier runs a read query; *sql.DB is one.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Queues reads the layout and a user's record in Redis; *queue.Client is
// one.
type Queues interface {
	// LayoutStatus reads the recorded layout; found is false when none is.
	LayoutStatus(ctx context.Context) (st queue.LayoutStatus, found bool, err error)
	// UserRecord reads userID's record in queue q.
	UserRecord(ctx context.Context, q int, userID int64) ([]queue.RecordEntry, bool, error)
}

// Entry is one entry of a user's record in one queue.
type Entry struct {
	Queue     int
	State     queue.EntryState
	Version   int64
	PushAt    time.Time
	InTransit bool // in the queue's moving hash: between queues while N changes
}

// Reminder is one reminder: its MySQL row (Status "" when MySQL has none)
// joined with what Redis holds for it.
type Reminder struct {
	TemplateID int64
	Status     string // pending | sent | cancelled; "" when only Redis has it
	PushAt     time.Time
	Version    int64
	PushID     string
	SentAt     time.Time // zero until sent
	Redis      []Entry
	// Note explains a disagreement an operator may act on; "" when the
	// two agree or the gap is the normal marking lag.
	Note string
}

// User is one user's trace.
type User struct {
	UserID int64
	// Layout is the recorded layout, or the one assumed when Recorded is
	// false (From = To = Span = the fallback N).
	Layout   queue.LayoutStatus
	Recorded bool
	// Queues are where the user's record may be under the layout: its old
	// queue, then its new one, while a move runs.
	Queues    []int
	InTransit bool
	Reminders []Reminder
}

// Read traces userID: its subscription rows from db, then its record in
// every queue the layout may hold it in. fallback gives N while no layout
// is recorded in Redis. Errors say which engine failed.
func Read(ctx context.Context, db Querier, qs Queues, fallback func(context.Context) (int, error), userID int64) (User, error) {
	out := User{UserID: userID, Reminders: []Reminder{}}
	byTemplate := map[int64]int{}
	rows, err := db.QueryContext(ctx, `SELECT template_id, push_at, status, version, push_id, sent_at
		FROM subscriptions WHERE user_id = ? ORDER BY push_at, template_id`, userID)
	if err != nil {
		return User{}, fmt.Errorf("mysql: read user %d: %w", userID, err)
	}
	for rows.Next() {
		var r Reminder
		var pushID sql.NullString
		var sentAt sql.NullTime
		if err := rows.Scan(&r.TemplateID, &r.PushAt, &r.Status, &r.Version, &pushID, &sentAt); err != nil {
			rows.Close()
			return User{}, fmt.Errorf("mysql: read user %d: %w", userID, err)
		}
		r.PushID, r.SentAt, r.Redis = pushID.String, sentAt.Time, []Entry{}
		byTemplate[r.TemplateID] = len(out.Reminders)
		out.Reminders = append(out.Reminders, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return User{}, fmt.Errorf("mysql: read user %d: %w", userID, err)
	}

	st, recorded, err := qs.LayoutStatus(ctx)
	if err != nil {
		return User{}, err
	}
	if !recorded {
		n, err := fallback(ctx)
		if err != nil {
			return User{}, err
		}
		st.Layout = queue.Layout{From: n, To: n, Span: n}
	}
	out.Layout, out.Recorded = st, recorded
	out.Queues = st.Homes(userID)
	for _, q := range out.Queues {
		es, inTransit, err := qs.UserRecord(ctx, q, userID)
		if err != nil {
			return User{}, err
		}
		out.InTransit = out.InTransit || inTransit
		for _, e := range es {
			i, ok := byTemplate[e.TemplateID]
			if !ok {
				i = len(out.Reminders)
				byTemplate[e.TemplateID] = i
				out.Reminders = append(out.Reminders, Reminder{TemplateID: e.TemplateID, Redis: []Entry{}})
			}
			out.Reminders[i].Redis = append(out.Reminders[i].Redis, Entry{
				Queue: q, State: e.State, Version: e.Version, PushAt: e.PushAt, InTransit: e.InTransit,
			})
		}
	}
	for i := range out.Reminders {
		out.Reminders[i].Note = note(out.Reminders[i])
	}
	return out, nil
}

// note explains a reminder whose MySQL row and Redis entry disagree in a
// way an operator may act on; "" when they agree or the gap is the normal
// marking lag.
func note(r Reminder) string {
	var newest int64
	taken, pending := false, false
	for _, e := range r.Redis {
		newest = max(newest, e.Version)
		taken = taken || e.State == queue.StateTaken || e.State == queue.StateTakenMoved
		pending = pending || e.State == queue.StatePending
	}
	switch {
	case r.Status == "":
		return "in Redis only (no MySQL row)"
	case r.Status == "pending" && len(r.Redis) == 0:
		return "not indexed: `scheduler-admin rebuild` re-indexes it"
	case r.Status == "pending" && taken:
		return "taken: being published, or sent with its sent-mark not in MySQL yet"
	case r.Status == "pending" && newest < r.Version:
		return "Redis holds an older version: `scheduler-admin rebuild` updates it"
	case r.Status == "cancelled" && pending:
		return "cancelled in MySQL but pending in Redis"
	}
	return ""
}
