package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// QueueInfo is what one queue holds, as operators see it (Inspect).
type QueueInfo struct {
	Queue       int
	Users       int64     // users with a record (HLEN items)
	DueUsers    int64     // users with a due score: pending items or tombstones to drop (ZCARD due)
	EarliestDue time.Time // the lowest due score; zero when none
	InFlight    int64     // chunks popped and not yet acked (ZCARD flight)
	Ready       int64     // chunks prepared ahead of due, not yet begun (ZCARD ready)
	NextReady   time.Time // the earliest ready chunk's publish time; zero when none
	Marks       int64     // acked chunks waiting for MySQL's sent-mark (ZCARD marks)
	InTransit   int64     // users taken out by a move, not yet in their new queue (HLEN moving)
	DeadLetters int64     // pushes set aside as never publishable (HLEN dead)
	LeaseHolder string    // owner part of the lease ("owner/token"); "" when not held or anonymous
	LeaseHeld   bool      // someone holds the lease
	LeaseTTL    time.Duration
	Epoch       string // the layout "gen:from:to" the queue follows; "" when absent
}

// inspectChunk bounds how many queues one pipeline asks about.
const inspectChunk = 512

// Inspect reads queues 0..span-1 in pipelined round trips. It only reads.
func (c *Client) Inspect(ctx context.Context, span int) ([]QueueInfo, error) {
	if span < 0 {
		return nil, fmt.Errorf("queue inspect: span %d < 0", span)
	}
	out := make([]QueueInfo, 0, span)
	for lo := 0; lo < span; lo += inspectChunk {
		hi := min(lo+inspectChunk, span)
		type probe struct {
			users, due, flight, marks, moving, dead, ready *redis.IntCmd
			first, firstReady                              *redis.ZSliceCmd
			lease, epoch                                   *redis.StringCmd
			ttl                                            *redis.DurationCmd
		}
		pipe := c.rdb.Pipeline()
		probes := make([]probe, hi-lo)
		for i := range probes {
			k := c.keys(lo + i)
			probes[i] = probe{
				users:      pipe.HLen(ctx, k.items),
				due:        pipe.ZCard(ctx, k.due),
				first:      pipe.ZRangeWithScores(ctx, k.due, 0, 0),
				flight:     pipe.ZCard(ctx, k.flight),
				ready:      pipe.ZCard(ctx, k.ready),
				firstReady: pipe.ZRangeWithScores(ctx, k.ready, 0, 0),
				marks:      pipe.ZCard(ctx, k.marks),
				moving:     pipe.HLen(ctx, k.moving),
				dead:       pipe.HLen(ctx, k.dead),
				lease:      pipe.Get(ctx, k.lease),
				ttl:        pipe.PTTL(ctx, k.lease),
				epoch:      pipe.Get(ctx, k.epoch),
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("queue inspect %d..%d: %w", lo, hi-1, err)
		}
		for i, p := range probes {
			qi := QueueInfo{
				Queue:       lo + i,
				Users:       p.users.Val(),
				DueUsers:    p.due.Val(),
				InFlight:    p.flight.Val(),
				Ready:       p.ready.Val(),
				Marks:       p.marks.Val(),
				InTransit:   p.moving.Val(),
				DeadLetters: p.dead.Val(),
				Epoch:       p.epoch.Val(),
			}
			if f := p.first.Val(); len(f) == 1 {
				qi.EarliestDue = time.UnixMilli(int64(f[0].Score))
			}
			if f := p.firstReady.Val(); len(f) == 1 {
				qi.NextReady = time.UnixMilli(int64(f[0].Score))
			}
			if v, err := p.lease.Result(); err == nil {
				qi.LeaseHeld = true
				if i := strings.LastIndexByte(v, '/'); i >= 0 {
					qi.LeaseHolder = v[:i]
				}
				if ttl := p.ttl.Val(); ttl > 0 {
					qi.LeaseTTL = ttl
				}
			}
			out = append(out, qi)
		}
	}
	return out, nil
}

// EntryState is the state of one entry in a user's record (see
// lua/prelude.lua).
type EntryState byte

// Entry states.
const (
	StatePending    EntryState = 'P' // waiting for its time
	StateCancelled  EntryState = 'C' // a tombstone, kept a while past its push time
	StateTaken      EntryState = 'F' // popped: being or already published, until MySQL records it as sent (also a P entry of a user without a due score: see lua/prelude.lua)
	StateTakenMoved EntryState = 'S' // taken in another queue before a move brought the record here
)

func (s EntryState) String() string {
	switch s {
	case 0:
		return "none"
	case StatePending:
		return "pending"
	case StateCancelled:
		return "cancelled"
	case StateTaken:
		return "taken"
	case StateTakenMoved:
		return "taken-moved"
	}
	return "unknown(" + string(rune(s)) + ")"
}

// RecordEntry is one (template, push time) of a user's packed record.
type RecordEntry struct {
	TemplateID int64
	PushAt     time.Time
	Version    int64
	State      EntryState
	InTransit  bool // read from the queue's moving hash: the user is between queues
}

// UserRecord reads userID's record in queue q: the entries of its items
// record, then those of a record a move took out of q and has not yet
// merged into the user's new queue (inTransit reports such a record).
func (c *Client) UserRecord(ctx context.Context, q int, userID int64) (entries []RecordEntry, inTransit bool, err error) {
	if q < 0 {
		return nil, false, fmt.Errorf("queue user record: queue %d < 0", q)
	}
	k := c.keys(q)
	user := strconv.FormatInt(userID, 10)
	pipe := c.rdb.Pipeline()
	items := pipe.HGet(ctx, k.items, user)
	score := pipe.ZScore(ctx, k.due, user)
	moving := pipe.HGet(ctx, k.moving, user)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, fmt.Errorf("queue user record %d in %d: %w", userID, q, err)
	}
	scored, err := hasScore(score)
	if err != nil {
		return nil, false, fmt.Errorf("queue user record %d in %d: %w", userID, q, err)
	}
	for _, cmd := range []*redis.StringCmd{items, moving} {
		rec, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("queue user record %d in %d: %w", userID, q, err)
		}
		es, err := ParseRecord(rec)
		if err != nil {
			return nil, false, fmt.Errorf("queue user record %d in %d: %w", userID, q, err)
		}
		if cmd == moving {
			inTransit = true
			for i := range es {
				es[i].InTransit = true
			}
		} else if !scored {
			markTaken(es)
		}
		entries = append(entries, es...)
	}
	return entries, inTransit, nil
}

// hasScore reports whether a ZSCORE found its member.
func hasScore(cmd *redis.FloatCmd) (bool, error) {
	err := cmd.Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return err == nil, err
}

// markTaken makes implicit taken entries explicit, for a user without a
// due score: its P entries were taken by a pop (see lua/prelude.lua).
func markTaken(es []RecordEntry) {
	for i := range es {
		if es[i].State == StatePending {
			es[i].State = StateTaken
		}
	}
}

// ErrBadRecord means a user's packed record does not parse.
var ErrBadRecord = errors.New("queue: malformed record")

// ParseRecord parses a packed record "tid,ms,ver,state;...".
func ParseRecord(rec string) ([]RecordEntry, error) {
	var out []RecordEntry
	for rest := rec; rest != ""; {
		var one string
		var ok bool
		if one, rest, ok = strings.Cut(rest, ";"); !ok {
			return nil, fmt.Errorf("%w: %q lacks a final ';'", ErrBadRecord, rec)
		}
		f := strings.Split(one, ",")
		if len(f) != 4 {
			return nil, fmt.Errorf("%w: entry %q", ErrBadRecord, one)
		}
		tid, err1 := strconv.ParseInt(f[0], 10, 64)
		ms, err2 := strconv.ParseInt(f[1], 10, 64)
		ver, err3 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || len(f[3]) != 1 {
			return nil, fmt.Errorf("%w: entry %q", ErrBadRecord, one)
		}
		st := EntryState(f[3][0])
		switch st {
		case StatePending, StateCancelled, StateTaken, StateTakenMoved:
		default:
			return nil, fmt.Errorf("%w: entry %q has state %q", ErrBadRecord, one, f[3])
		}
		out = append(out, RecordEntry{TemplateID: tid, PushAt: time.UnixMilli(ms), Version: ver, State: st})
	}
	return out, nil
}

// States reports, for each entry, the state of its (user, template) in the
// queues that may hold its user under layout l (Layout.Homes), including a
// record in transit between them; 0 when the index has none. One
// pipelined round trip; it only reads.
func (c *Client) States(ctx context.Context, l Layout, entries []Entry) ([]EntryState, error) {
	recs, err := c.Records(ctx, l, entries)
	if err != nil {
		return nil, err
	}
	out := make([]EntryState, len(entries))
	for i, r := range recs {
		out[i] = r.State
	}
	return out, nil
}

// Records is States with the whole entry the index holds for each (user,
// template): its version, push time and state (State 0 when none). One
// pipelined round trip; it only reads.
func (c *Client) Records(ctx context.Context, l Layout, entries []Entry) ([]RecordEntry, error) {
	if l.To < 1 || l.From < 1 {
		return nil, fmt.Errorf("queue states: bad layout %s", l)
	}
	// A record of a queue's items hash comes with the user's due score there
	// (nil for the moving hash, whose records have no implicit entries).
	type read struct {
		rec   *redis.StringCmd
		score *redis.FloatCmd
	}
	pipe := c.rdb.Pipeline()
	recs := make([][]read, len(entries))
	for i, e := range entries {
		user := strconv.FormatInt(e.UserID, 10)
		homes := l.Homes(e.UserID)
		k0 := c.keys(homes[0])
		recs[i] = append(recs[i], read{pipe.HGet(ctx, k0.items, user), pipe.ZScore(ctx, k0.due, user)})
		if len(homes) == 2 {
			k1 := c.keys(homes[1])
			recs[i] = append(recs[i], read{rec: pipe.HGet(ctx, k0.moving, user)},
				read{pipe.HGet(ctx, k1.items, user), pipe.ZScore(ctx, k1.due, user)})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("queue states: %w", err)
	}
	out := make([]RecordEntry, len(entries))
	for i, e := range entries {
		for _, r := range recs[i] {
			rec, err := r.rec.Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("queue states user %d: %w", e.UserID, err)
			}
			es, err := ParseRecord(rec)
			if err != nil {
				return nil, fmt.Errorf("queue states user %d: %w", e.UserID, err)
			}
			if r.score != nil {
				scored, err := hasScore(r.score)
				if err != nil {
					return nil, fmt.Errorf("queue states user %d: %w", e.UserID, err)
				}
				if !scored {
					markTaken(es)
				}
			}
			for _, x := range es {
				if x.TemplateID == e.TemplateID && out[i].State == 0 {
					out[i] = x
				}
			}
		}
	}
	return out, nil
}
