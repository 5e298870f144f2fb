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
	DueUsers    int64     // users with a due score: pending items or tombstones to drop (ZCARD of the due sets)
	EarliestDue time.Time // the lowest due score; zero when none
	// Backlog counts the users due by the Redis clock and not yet taken,
	// per priority of their next push: index 0 high, 1 normal, 2 low (as
	// Priorities). A backlog that stays is work the cluster is behind on.
	Backlog     [3]int64
	InFlight    int64     // chunks popped and not yet acked (ZCARD flight)
	Ready       int64     // chunks prepared ahead of due, not yet begun (ZCARD of the ready sets)
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
	now, err := c.Time(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue inspect: %w", err)
	}
	nowMs := strconv.FormatInt(now.UnixMilli(), 10)
	out := make([]QueueInfo, 0, span)
	for lo := 0; lo < span; lo += inspectChunk {
		hi := min(lo+inspectChunk, span)
		type probe struct {
			users, flight, marks, moving, dead *redis.IntCmd
			due, backlog, ready                [3]*redis.IntCmd
			first, firstReady                  [3]*redis.ZSliceCmd
			lease, epoch                       *redis.StringCmd
			ttl                                *redis.DurationCmd
		}
		pipe := c.rdb.Pipeline()
		probes := make([]probe, hi-lo)
		for i := range probes {
			k := c.keys(lo + i)
			p := probe{
				users:  pipe.HLen(ctx, k.items),
				flight: pipe.ZCard(ctx, k.flight),
				marks:  pipe.ZCard(ctx, k.marks),
				moving: pipe.HLen(ctx, k.moving),
				dead:   pipe.HLen(ctx, k.dead),
				lease:  pipe.Get(ctx, k.lease),
				ttl:    pipe.PTTL(ctx, k.lease),
				epoch:  pipe.Get(ctx, k.epoch),
			}
			due, ready := k.dueSets(), k.readySets()
			for c := range due {
				p.due[c] = pipe.ZCard(ctx, due[c])
				p.backlog[c] = pipe.ZCount(ctx, due[c], "-inf", nowMs)
				p.first[c] = pipe.ZRangeWithScores(ctx, due[c], 0, 0)
				p.ready[c] = pipe.ZCard(ctx, ready[c])
				p.firstReady[c] = pipe.ZRangeWithScores(ctx, ready[c], 0, 0)
			}
			probes[i] = p
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("queue inspect %d..%d: %w", lo, hi-1, err)
		}
		for i, p := range probes {
			qi := QueueInfo{
				Queue:       lo + i,
				Users:       p.users.Val(),
				InFlight:    p.flight.Val(),
				Marks:       p.marks.Val(),
				InTransit:   p.moving.Val(),
				DeadLetters: p.dead.Val(),
				Epoch:       p.epoch.Val(),
			}
			for c := range p.due {
				qi.DueUsers += p.due[c].Val()
				qi.Backlog[c] = p.backlog[c].Val()
				qi.Ready += p.ready[c].Val()
				qi.EarliestDue = earlier(qi.EarliestDue, p.first[c].Val())
				qi.NextReady = earlier(qi.NextReady, p.firstReady[c].Val())
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
	Priority   Priority // stamped when it was indexed
	InTransit  bool     // read from the queue's moving hash: the user is between queues
}

// earlier is the earlier of t and the score of a ZRANGE 0 0's one member
// (t when it has none; zero t is none).
func earlier(t time.Time, zs []redis.Z) time.Time {
	if len(zs) != 1 {
		return t
	}
	s := time.UnixMilli(int64(zs[0].Score))
	if t.IsZero() || s.Before(t) {
		return s
	}
	return t
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
	score := scores(ctx, pipe, k, user)
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

// scores queues the ZSCOREs of user in each of k's due sets on pipe.
func scores(ctx context.Context, pipe redis.Pipeliner, k queueKeys, user string) []*redis.FloatCmd {
	due := k.dueSets()
	out := make([]*redis.FloatCmd, len(due))
	for i, key := range due {
		out[i] = pipe.ZScore(ctx, key, user)
	}
	return out
}

// hasScore reports whether any of the ZSCOREs (scores) found its member:
// the user has a due score.
func hasScore(cmds []*redis.FloatCmd) (bool, error) {
	found := false
	for _, cmd := range cmds {
		err := cmd.Err()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return false, err
		}
		found = true
	}
	return found, nil
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

// ParseRecord parses a packed record "tid,ms,ver,state[class];...".
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
		if err1 != nil || err2 != nil || err3 != nil || len(f[3]) < 1 || len(f[3]) > 2 {
			return nil, fmt.Errorf("%w: entry %q", ErrBadRecord, one)
		}
		prio := PriorityNormal
		if len(f[3]) == 2 {
			switch f[3][1] {
			case 'h':
				prio = PriorityHigh
			case 'l':
				prio = PriorityLow
			default:
				return nil, fmt.Errorf("%w: entry %q has class %q", ErrBadRecord, one, f[3][1:])
			}
		}
		st := EntryState(f[3][0])
		switch st {
		case StatePending, StateCancelled, StateTaken, StateTakenMoved:
		default:
			return nil, fmt.Errorf("%w: entry %q has state %q", ErrBadRecord, one, f[3])
		}
		out = append(out, RecordEntry{TemplateID: tid, PushAt: time.UnixMilli(ms), Version: ver, State: st, Priority: prio})
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
		score []*redis.FloatCmd
	}
	pipe := c.rdb.Pipeline()
	recs := make([][]read, len(entries))
	for i, e := range entries {
		user := strconv.FormatInt(e.UserID, 10)
		homes := l.Homes(e.UserID)
		k0 := c.keys(homes[0])
		recs[i] = append(recs[i], read{pipe.HGet(ctx, k0.items, user), scores(ctx, pipe, k0, user)})
		if len(homes) == 2 {
			k1 := c.keys(homes[1])
			recs[i] = append(recs[i], read{rec: pipe.HGet(ctx, k0.moving, user)},
				read{pipe.HGet(ctx, k1.items, user), scores(ctx, pipe, k1, user)})
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
