package queue

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Dead letters. A push that can never be published (too large for nsqd, a
// message nsqd refuses, a template that does not exist) must not hold up
// the pushes behind it: its chunk would stay in flight and every lease
// holder would republish it first. DeadLetter sets such pushes aside in the
// queue's dead-letter hash, bounded by Options.MaxDead, and settles the
// rest of their chunk as acked. Their items stay taken in their users'
// records (and pending in MySQL), so nothing indexes them again; Replay
// puts them back in flight, unchanged, once the cause is fixed.

// maxReasonBytes bounds the reason stored with a dead push.
const maxReasonBytes = 300

// Unsent names a push of a chunk, by its index in Chunk.Pushes, that can
// never be published, and why.
type Unsent struct {
	Index  int
	Reason string
}

// DeadPush is a push in a queue's dead-letter set.
type DeadPush struct {
	Queue  int
	Push   Push
	Reason string
	At     time.Time // when it was set aside, by the Redis clock
	line   string    // its stored form, the hash field
}

// DeadLetter settles ch, taken from l's queue, whose pushes named in unsent
// can never be published while nsqd accepted all the others: in one script
// (lua/dead.lua) the chunk leaves the flight set, the accepted pushes wait
// in the marks set as a chunk of their own (returned as rest, for their
// sent-marks; it has no pushes when all were unsent), and the unsent ones
// go to the dead-letter set. ok is false when ch was no longer in flight.
// It needs l's token (ErrLeaseLost otherwise) and room in the set
// (ErrDeadFull otherwise); either way nothing changes.
func (c *Client) DeadLetter(ctx context.Context, l *Lease, ch Chunk, unsent []Unsent) (rest Chunk, ok bool, err error) {
	if len(unsent) == 0 {
		return Chunk{}, false, fmt.Errorf("queue dead letter %d: no unsent push", l.Queue)
	}
	lines := strings.Split(ch.raw, "\n")
	dead := make([]bool, len(lines))
	args := []any{l.token, "", c.maxDead, ch.raw, ""}
	for _, u := range unsent {
		if u.Index < 0 || u.Index >= len(lines) || dead[u.Index] {
			return Chunk{}, false, fmt.Errorf("queue dead letter %d: push index %d out of range or repeated", l.Queue, u.Index)
		}
		dead[u.Index] = true
		args = append(args, lines[u.Index], reason(u.Reason))
	}
	var keep []string
	for i, line := range lines {
		if !dead[i] {
			keep = append(keep, line)
			rest.Pushes = append(rest.Pushes, ch.Pushes[i])
		}
	}
	rest.raw = strings.Join(keep, "\n")
	args[4] = rest.raw
	k := c.keys(l.Queue)
	n, err := deadScript.Run(ctx, c.rdb, []string{k.flight, k.marks, k.dead, k.lease}, args...).Int()
	if err != nil {
		return Chunk{}, false, leaseErr("dead letter", l.Queue, err)
	}
	return rest, n == 1, nil
}

// reason makes r fit the stored form: one line, at most maxReasonBytes.
func reason(r string) string {
	r = strings.Join(strings.Fields(r), " ")
	if r == "" {
		r = "unknown"
	}
	if len(r) > maxReasonBytes {
		r = strings.ToValidUTF8(r[:maxReasonBytes], "")
	}
	return r
}

// DeadLetters lists queue q's dead-letter set, oldest first.
func (c *Client) DeadLetters(ctx context.Context, q int) ([]DeadPush, error) {
	m, err := c.rdb.HGetAll(ctx, c.keys(q).dead).Result()
	if err != nil {
		return nil, fmt.Errorf("queue dead letters %d: %w", q, err)
	}
	out := make([]DeadPush, 0, len(m))
	for line, v := range m {
		p, err := ParsePush(line)
		if err != nil {
			return nil, fmt.Errorf("queue dead letters %d: %w", q, err)
		}
		ms, why, _ := strings.Cut(v, " ")
		at, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("queue dead letters %d: time %q: %w", q, ms, err)
		}
		out = append(out, DeadPush{Queue: q, Push: p, Reason: why, At: time.UnixMilli(at), line: line})
	}
	slices.SortFunc(out, func(a, b DeadPush) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.line, b.line)
	})
	return out, nil
}

// replayChunk bounds the pushes of one chunk Replay puts back.
const replayChunk = 1000

// Replay puts dead pushes of queue q back in flight (lua/replay.lua), all
// of them when pushes is empty, unchanged: the queue's lease holder
// publishes them with their push ids, as it does the flights a dead worker
// left. It tells the next-work index the queue has work now, and returns
// how many pushes went back (those already gone from the set are skipped).
func (c *Client) Replay(ctx context.Context, q int, pushes []DeadPush) (int, error) {
	args := []any{"", replayChunk}
	for _, d := range pushes {
		if d.Queue != q || d.line == "" {
			return 0, fmt.Errorf("queue replay %d: push of user %d is not from this queue's dead letters", q, d.Push.UserID)
		}
		args = append(args, d.line)
	}
	now, err := c.Time(ctx)
	if err != nil {
		return 0, fmt.Errorf("queue replay %d: %w", q, err)
	}
	args[0] = strconv.FormatInt(now.UnixMilli(), 10)
	k := c.keys(q)
	n, err := replayScript.Run(ctx, c.rdb, []string{k.dead, k.flight}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("queue replay %d: %w", q, err)
	}
	if n > 0 {
		if err := c.rdb.ZAddLT(ctx, c.nextKey(), redis.Z{Score: float64(now.UnixMilli()), Member: q}).Err(); err != nil {
			return n, fmt.Errorf("queue replay %d: %w", q, err)
		}
	}
	return n, nil
}
