package queue

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/enginetest"
)

// TestMoveReplaysWhatADeadMoverLeft: a mover that took users out of their
// old queue and died before merging them leaves them in the moving hash;
// writes for them wait (retry) meanwhile, and the next MoveQueue merges
// them into their new queue.
func TestMoveReplaysWhatADeadMoverLeft(t *testing.T) {
	ctx := context.Background()
	rdb := enginetest.Redis(t)
	c, err := New(rdb, Options{Prefix: enginetest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.InitLayout(ctx, 2); err != nil {
		t.Fatal(err)
	}
	r := c.NewRouter(func() int { return 2 })
	at := time.Now().Add(time.Hour)
	var leaving []any
	var user int64
	for u := int64(1); u <= 60; u++ {
		if err := r.Add(ctx, Entry{UserID: u, TemplateID: 1, PushAt: at, Version: 1}); err != nil {
			t.Fatal(err)
		}
		if Shard(u, 2) == 0 && Shard(u, 3) != 0 {
			leaving = append(leaving, strconv.FormatInt(u, 10))
			user = u
		}
	}
	if len(leaving) == 0 {
		t.Fatal("no user leaves queue 0")
	}
	st, _, err := c.LayoutStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.BeginMove(ctx, st.Layout, 3)
	if err != nil {
		t.Fatal(err)
	}
	k := c.keys(0)
	if err := moveOutScript.Run(ctx, rdb, k.moveOutKeys(), append([]any{l.key()}, leaving...)...).Err(); err != nil {
		t.Fatal(err)
	}
	// The mover died here. A write for a user in transit waits.
	r.RetryFor = 200 * time.Millisecond
	err = r.Cancel(ctx, Entry{UserID: user, TemplateID: 1, PushAt: at, Version: 2})
	if !errors.Is(err, ErrStaleCount) {
		t.Fatalf("cancel of a user in transit: %v, want it to retry until ErrStaleCount", err)
	}
	if _, err := c.FinishMove(ctx, l); err == nil {
		t.Fatal("FinishMove succeeded with users in transit")
	}

	for q := 0; q < l.From; q++ {
		if _, err := c.MoveQueue(ctx, l, q, 7); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := rdb.HLen(ctx, k.moving).Result(); err != nil || n != 0 {
		t.Fatalf("moving hash after the replay: %d %v", n, err)
	}
	r.RetryFor = 10 * time.Second
	if err := r.Cancel(ctx, Entry{UserID: user, TemplateID: 1, PushAt: at, Version: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FinishMove(ctx, l); err != nil {
		t.Fatal(err)
	}
	for u := int64(1); u <= 60; u++ {
		rec, err := rdb.HGet(ctx, c.keys(Shard(u, 3)).items, strconv.FormatInt(u, 10)).Result()
		want := "1," + strconv.FormatInt(at.UnixMilli(), 10) + ",1,P;"
		if u == user {
			want = "1," + strconv.FormatInt(at.UnixMilli(), 10) + ",2,C;"
		}
		if err != nil || rec != want {
			t.Fatalf("user %d in its new queue: %q %v, want %q", u, rec, err, want)
		}
	}
}

// TestMoveInReplayKeepsATakenEntryTaken: a mover that died between merging
// a record into its new queue and dropping it from the moving hash merges
// it again later. If the new queue popped the user meanwhile (a pop leaves
// a single pending entry as it is and drops the due score: see
// lua/prelude.lua), the replay must not make that entry due again.
func TestMoveInReplayKeepsATakenEntryTaken(t *testing.T) {
	ctx := context.Background()
	rdb := enginetest.Redis(t)
	c, err := New(rdb, Options{Prefix: enginetest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.InitLayout(ctx, 2); err != nil {
		t.Fatal(err)
	}
	var user int64
	for u := int64(1); user == 0; u++ {
		if Shard(u, 2) == 0 && Shard(u, 3) != 0 {
			user = u
		}
	}
	at := time.Now().Add(-time.Second) // due
	if err := c.NewRouter(func() int { return 2 }).Add(ctx, Entry{UserID: user, TemplateID: 1, PushAt: at, Version: 1}); err != nil {
		t.Fatal(err)
	}
	st, _, err := c.LayoutStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.BeginMove(ctx, st.Layout, 3)
	if err != nil {
		t.Fatal(err)
	}
	from, to := c.keys(0), c.keys(Shard(user, 3))
	out, err := moveOutScript.Run(ctx, rdb, from.moveOutKeys(), l.key(), user).StringSlice()
	if err != nil || len(out) != 2 {
		t.Fatalf("move out = %v, %v", out, err)
	}
	moveIn := func() {
		t.Helper()
		err := moveInScript.Run(ctx, rdb, to.moveInKeys(), l.key(), c.tombTTLms, c.classWinMs, out[0], out[1]).Err()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("move in: %v", err)
		}
	}
	moveIn()
	lease, ok, err := c.Acquire(ctx, Shard(user, 3), 5*time.Second)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	opts := PopOptions{MergeWindow: time.Second, MaxUsers: 10, Deadline: 10 * time.Second}
	if p, err := c.Pop(ctx, lease, opts); err != nil || len(p.Chunk.Pushes) != 1 {
		t.Fatalf("pop in the new queue = %v, %v; want the user", p.Chunk.Pushes, err)
	}
	moveIn() // the replay
	if n, err := rdb.ZCard(ctx, to.due).Result(); err != nil || n != 0 {
		t.Fatalf("due users after the replay: %d %v; want none", n, err)
	}
	if p, err := c.Pop(ctx, lease, opts); err != nil || len(p.Chunk.Pushes) != 0 {
		t.Fatalf("pop after the replay = %v, %v; want nothing (taken already)", p.Chunk.Pushes, err)
	}
}
