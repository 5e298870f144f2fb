package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"couponpush/queue"
)

func TestUser(t *testing.T) {
	parallel(t)
	e := newEngines(t)
	ctx := t.Context()
	const n = 4
	if _, err := e.queue.InitLayout(ctx, n); err != nil {
		t.Fatal(err)
	}
	r := e.queue.NewRouter(func() int { return n })
	now := time.Now().Truncate(time.Millisecond)
	const user = 42
	add := func(tid int64, at time.Time, ver int64) {
		t.Helper()
		if err := r.Add(ctx, queue.Entry{UserID: user, TemplateID: tid, PushAt: at, Version: ver}); err != nil {
			t.Fatal(err)
		}
	}
	e.subscribe(t, user, 1, now.Add(time.Hour), "pending", 1, "") // indexed
	add(1, now.Add(time.Hour), 1)
	e.subscribe(t, user, 2, now.Add(time.Hour), "pending", 1, "")     // lost from the index
	e.subscribe(t, user, 3, now.Add(-time.Hour), "sent", 2, "push-3") // sent and forgotten by Redis
	e.subscribe(t, user, 4, now.Add(2*time.Hour), "cancelled", 2, "") // cancelled: a tombstone
	e.subscribe(t, user, 5, now.Add(-time.Minute), "pending", 1, "")  // taken, mark not in MySQL yet
	e.subscribe(t, 43, 1, now.Add(time.Hour), "pending", 1, "")       // someone else
	add(4, now.Add(2*time.Hour), 1)
	if err := r.Cancel(ctx, queue.Entry{UserID: user, TemplateID: 4, PushAt: now.Add(2 * time.Hour), Version: 2}); err != nil {
		t.Fatal(err)
	}
	add(5, now.Add(-time.Minute), 1)
	add(6, now.Add(3*time.Hour), 1) // in Redis only
	home := queue.Shard(user, n)
	l, ok, err := e.queue.Acquire(ctx, home, time.Minute)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	p, err := e.queue.Pop(ctx, l, queue.PopOptions{Now: now, MergeWindow: time.Second, MaxUsers: 100, Deadline: time.Minute})
	if err != nil || len(p.Chunk.Pushes) != 1 {
		t.Fatalf("pop: %+v %v", p, err)
	}

	res := runCLI(t, append(e.flags(), "user", "42")...)
	res.want(t, 0, "user 42", "")
	for _, s := range []string{
		fmt.Sprintf("queue: %d\n", home), "in transit: no", "TEMPLATE", "PUSH_ID",
		"push-3", "pending v1", "cancelled v2", "taken v1", "not indexed", "taken: being published", "in Redis only",
	} {
		if !strings.Contains(res.stdout, s) {
			t.Errorf("user 42 lacks %q:\n%s", s, res.stdout)
		}
	}

	res = runCLI(t, append(e.flags(), "user", "42", "-json")...)
	var out userJSON
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || res.code != 0 {
		t.Fatalf("user -json: %v %+v", err, res)
	}
	if out.UserID != user || !slices.Equal(out.Queues, []int{home}) || out.InTransit || out.Layout == nil || out.Layout.To != n || len(out.Reminders) != 6 {
		t.Fatalf("user -json = %+v", out)
	}
	want := map[int64]struct{ status, redis string }{
		1: {"pending", "pending"}, 2: {"pending", ""}, 3: {"sent", ""}, 4: {"cancelled", "cancelled"}, 5: {"pending", "taken"}, 6: {"", "pending"},
	}
	for _, rem := range out.Reminders {
		w := want[rem.TemplateID]
		got := ""
		if len(rem.Redis) == 1 {
			got = rem.Redis[0].State
			if rem.Redis[0].Queue != home {
				t.Errorf("template %d in queue %d, want %d", rem.TemplateID, rem.Redis[0].Queue, home)
			}
		}
		if rem.Status != w.status || got != w.redis || len(rem.Redis) > 1 {
			t.Errorf("template %d: status %q redis %+v; want %q and %q", rem.TemplateID, rem.Status, rem.Redis, w.status, w.redis)
		}
		if rem.TemplateID == 3 && (rem.PushID != "push-3" || rem.SentAt == "") {
			t.Errorf("sent reminder: %+v", rem)
		}
	}

	runCLI(t, append(e.flags(), "user", "777")...).want(t, 0, "no reminders in MySQL or Redis", "")

	// While N changes, a user whose queue changes may sit in either queue.
	mover := int64(1)
	for queue.Shard(mover, n) == queue.Shard(mover, 6) {
		mover++
	}
	st, _, err := e.queue.LayoutStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.queue.BeginMove(ctx, st.Layout, 6); err != nil {
		t.Fatal(err)
	}
	res = runCLI(t, append(e.flags(), "user", fmt.Sprint(mover))...)
	res.want(t, 0, fmt.Sprintf("queue: %d then %d (its old queue", queue.Shard(mover, n), queue.Shard(mover, 6)), "")
	res.want(t, 0, "moving 4 -> 6 queues", "")
}
