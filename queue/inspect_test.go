package queue_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"couponpush/internal/enginetest"
	"couponpush/queue"
)

// usersOf returns count user ids that land in queue q of n, from 1 up.
func usersOf(q, n, count int) []int64 {
	var out []int64
	for u := int64(1); len(out) < count; u++ {
		if queue.Shard(u, n) == q {
			out = append(out, u)
		}
	}
	return out
}

func TestInspect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := enginetest.Redis(t)
	prefix := enginetest.Prefix(t)
	c, err := queue.New(rdb, queue.Options{Prefix: prefix, Owner: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	if _, err := c.InitLayout(ctx, n); err != nil {
		t.Fatal(err)
	}
	r := c.NewRouter(func() int { return n })
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

	// Queue 1: three users, two due at `at`, one an hour later; pop the two
	// due ones and ack them (marks); queue 2: one user, popped, not acked
	// (in flight); queue 3: empty. Queue 0 has a user in transit.
	u1 := usersOf(1, n, 3)
	for i, u := range u1 {
		if err := r.Add(ctx, queue.Entry{UserID: u, TemplateID: 7, PushAt: at.Add(time.Duration(i/2) * time.Hour), Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	u2 := usersOf(2, n, 1)
	if err := r.Add(ctx, queue.Entry{UserID: u2[0], TemplateID: 8, PushAt: at, Version: 1}); err != nil {
		t.Fatal(err)
	}

	before, err := c.Inspect(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != n {
		t.Fatalf("Inspect(%d) returned %d queues", n, len(before))
	}
	if q := before[1]; q.Users != 3 || q.DueUsers != 3 || !q.EarliestDue.Equal(at) || q.LeaseHeld || q.InFlight != 0 {
		t.Fatalf("queue 1 before pop = %+v", q)
	}
	if q := before[0]; q.Users != 0 || q.DueUsers != 0 || !q.EarliestDue.IsZero() || q.Epoch == "" {
		t.Fatalf("queue 0 = %+v; want empty with an epoch", q)
	}

	popAck := func(q int, ack bool) {
		t.Helper()
		l, ok, err := c.Acquire(ctx, q, time.Minute)
		if err != nil || !ok {
			t.Fatalf("acquire %d: %v %v", q, ok, err)
		}
		p, err := c.Pop(ctx, l, queue.PopOptions{Now: at, MergeWindow: time.Second, MaxUsers: 100, Deadline: time.Minute})
		if err != nil || len(p.Chunk.Pushes) == 0 {
			t.Fatalf("pop %d: %+v %v", q, p, err)
		}
		if ack {
			if ok, err := c.Ack(ctx, l, p.Chunk); err != nil || !ok {
				t.Fatalf("ack %d: %v %v", q, ok, err)
			}
		}
	}
	popAck(1, true)
	popAck(2, false)
	moving := fmt.Sprintf("%s:{%s:q0}:moving", prefix, prefix)
	const transit = 424242
	if err := rdb.HSet(ctx, moving, transit, "9,1700000000000,3,P;").Err(); err != nil {
		t.Fatal(err)
	}

	got, err := c.Inspect(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		q    queue.QueueInfo
		want func(queue.QueueInfo) bool
	}{
		{"queue 0 has a user in transit", got[0], func(q queue.QueueInfo) bool { return q.InTransit == 1 && q.Users == 0 }},
		{"queue 1 acked: marks, taken users kept, one due", got[1], func(q queue.QueueInfo) bool {
			return q.Users == 3 && q.DueUsers == 1 && q.EarliestDue.Equal(at.Add(time.Hour)) && q.Marks == 1 && q.InFlight == 0
		}},
		{"queue 1 lease holder", got[1], func(q queue.QueueInfo) bool {
			return q.LeaseHeld && q.LeaseHolder == "w1" && q.LeaseTTL > 50*time.Second && q.LeaseTTL <= time.Minute
		}},
		{"queue 2 in flight", got[2], func(q queue.QueueInfo) bool {
			return q.InFlight == 1 && q.Marks == 0 && q.DueUsers == 0 && q.LeaseHolder == "w1"
		}},
		{"queue 3 empty", got[3], func(q queue.QueueInfo) bool {
			return q.Users == 0 && !q.LeaseHeld && q.LeaseHolder == "" && q.LeaseTTL == 0 && q.Epoch != ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.want(tt.q) {
				t.Errorf("%+v", tt.q)
			}
		})
	}

	// Records: taken (acked, not yet forgotten), pending, in transit.
	es, inTransit, err := c.UserRecord(ctx, 1, u1[0])
	if err != nil || inTransit || len(es) != 1 || es[0].State != queue.StateTaken || es[0].TemplateID != 7 || es[0].Version != 1 || !es[0].PushAt.Equal(at) {
		t.Fatalf("record of user %d: %+v %v %v", u1[0], es, inTransit, err)
	}
	es, _, err = c.UserRecord(ctx, 1, u1[2])
	if err != nil || len(es) != 1 || es[0].State != queue.StatePending || es[0].State.String() != "pending" {
		t.Fatalf("record of user %d: %+v %v", u1[2], es, err)
	}
	es, inTransit, err = c.UserRecord(ctx, 0, transit)
	if err != nil || !inTransit || len(es) != 1 || !es[0].InTransit || es[0].TemplateID != 9 || es[0].Version != 3 {
		t.Fatalf("record in transit: %+v %v %v", es, inTransit, err)
	}
	es, inTransit, err = c.UserRecord(ctx, 3, 1)
	if err != nil || inTransit || len(es) != 0 {
		t.Fatalf("absent user: %+v %v %v", es, inTransit, err)
	}

	// A cancel leaves a tombstone.
	if err := r.Cancel(ctx, queue.Entry{UserID: u1[2], TemplateID: 7, PushAt: at.Add(time.Hour), Version: 2}); err != nil {
		t.Fatal(err)
	}
	es, _, err = c.UserRecord(ctx, 1, u1[2])
	if err != nil || len(es) != 1 || es[0].State != queue.StateCancelled || es[0].Version != 2 {
		t.Fatalf("cancelled record: %+v %v", es, err)
	}

	// A record that does not parse is an error, not a guess.
	items := fmt.Sprintf("%s:{%s:q3}:items", prefix, prefix)
	if err := rdb.HSet(ctx, items, 5, "garbage").Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.UserRecord(ctx, 3, 5); !errors.Is(err, queue.ErrBadRecord) {
		t.Fatalf("malformed record: err = %v, want ErrBadRecord", err)
	}
}

func TestParseRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rec  string
		want []queue.RecordEntry
		bad  bool
	}{
		{"empty", "", nil, false},
		{"one", "7,1000,2,P;", []queue.RecordEntry{{TemplateID: 7, PushAt: time.UnixMilli(1000), Version: 2, State: queue.StatePending}}, false},
		{"every state", "1,1,1,P;2,2,2,C;3,3,3,F;4,4,4,S;", []queue.RecordEntry{
			{TemplateID: 1, PushAt: time.UnixMilli(1), Version: 1, State: queue.StatePending},
			{TemplateID: 2, PushAt: time.UnixMilli(2), Version: 2, State: queue.StateCancelled},
			{TemplateID: 3, PushAt: time.UnixMilli(3), Version: 3, State: queue.StateTaken},
			{TemplateID: 4, PushAt: time.UnixMilli(4), Version: 4, State: queue.StateTakenMoved},
		}, false},
		{"big template id", "9223372036854775807,1,1,P;", []queue.RecordEntry{{TemplateID: 9223372036854775807, PushAt: time.UnixMilli(1), Version: 1, State: queue.StatePending}}, false},
		{"no final semicolon", "7,1000,2,P", nil, true},
		{"three fields", "7,1000,P;", nil, true},
		{"bad state", "7,1000,2,X;", nil, true},
		{"not a number", "x,1000,2,P;", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := queue.ParseRecord(tt.rec)
			if tt.bad {
				if !errors.Is(err, queue.ErrBadRecord) {
					t.Fatalf("ParseRecord(%q) = %+v, %v; want ErrBadRecord", tt.rec, got, err)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("ParseRecord(%q) = %+v, %v", tt.rec, got, err)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("entry %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
	if s := queue.StateTakenMoved.String(); s != "taken-moved" {
		t.Errorf("S state = %q", s)
	}
}

func TestStates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := enginetest.Redis(t)
	prefix := enginetest.Prefix(t)
	c, err := queue.New(rdb, queue.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.InitLayout(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	r := c.NewRouter(func() int { return 4 })
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	// Two users whose queue changes from 4 to 6 queues.
	var movers []int64
	for u := int64(1); len(movers) < 2; u++ {
		if queue.Shard(u, 4) != queue.Shard(u, 6) {
			movers = append(movers, u)
		}
	}
	for _, u := range movers {
		if err := r.Add(ctx, queue.Entry{UserID: u, TemplateID: 5, PushAt: at, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	probe := []queue.Entry{{UserID: movers[0], TemplateID: 5}, {UserID: movers[1], TemplateID: 5}, {UserID: movers[0], TemplateID: 6}}
	got, err := c.States(ctx, st.Layout, probe)
	if err != nil || got[0] != queue.StatePending || got[1] != queue.StatePending || got[2] != 0 {
		t.Fatalf("stable: %v %v", got, err)
	}
	l, err := c.BeginMove(ctx, st.Layout, 6)
	if err != nil {
		t.Fatal(err)
	}
	// The second user is in transit: out of its old queue's items, in its moving hash.
	old := queue.Shard(movers[1], 4)
	tag := fmt.Sprintf("%s:{%s:q%d}:", prefix, prefix, old)
	rec, err := rdb.HGet(ctx, tag+"items", fmt.Sprint(movers[1])).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.HDel(ctx, tag+"items", fmt.Sprint(movers[1])).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, tag+"moving", movers[1], rec).Err(); err != nil {
		t.Fatal(err)
	}
	got, err = c.States(ctx, l, probe)
	if err != nil || got[0] != queue.StatePending || got[1] != queue.StatePending || got[2] != 0 {
		t.Fatalf("during the move: %v %v", got, err)
	}
	// Under the new layout alone, the first user (not moved yet) is not found in its new queue.
	got, err = c.States(ctx, queue.Layout{From: 6, To: 6, Span: 6}, probe[:1])
	if err != nil || got[0] != 0 {
		t.Fatalf("new queue before the move: %v %v", got, err)
	}
	if _, err := c.States(ctx, queue.Layout{}, probe); err == nil {
		t.Fatal("zero layout: want an error")
	}
}
