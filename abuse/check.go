package abuse

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/batch"
	"couponpush/internal/redisscript"
)

// check is the Redis side of one Admit: the block lookups and limits of
// its subjects. The checks of concurrent Admits go to Redis in one shared
// pipeline (see internal/batch): those that arrive while a pipeline is on
// the wire wait and go in the next one, so a flood of guarded requests
// costs Redis and the worker one write and one read per pipeline rather
// than one round trip per request. Nothing waits on purpose: a lone check
// is sent at once.
type check struct {
	action   Action
	subjects []Subject
	lookup   bool   // look the subjects' blocks up
	wants    []int  // tokens to ask of subject i's limit script (0: none, as it has no limit, was admitted from leased ones or takes its first)
	firsts   []bool // take subject i's first token (first.go); nil: none
}

// first reports whether c takes subject i's first token.
func (c check) first(i int) bool { return c.firsts != nil && c.firsts[i] }

// checked is a check's replies, in the order of its subjects: exists[i]
// the block lookup of subject i (nil without lookup), limits[i] its limit
// script (nil where none was asked of), firsts[i] the write of its first
// token (nil where none was taken; redis.Nil when the subject had a limit
// state). err is the first error among them.
type checked struct {
	exists []*redis.IntCmd
	limits []*redis.Cmd
	firsts []*redis.StatusCmd
	err    error
}

// Bounds of the shared check pipelines.
const (
	checkBatch   = 256 // most checks in one pipeline
	checkFlushes = 4   // most pipelines on the wire at once
	// checkTimeout bounds one shared pipeline; each Admit still stops
	// waiting when its own context ends.
	checkTimeout = 5 * time.Second
)

func (g *Guard) newChecks() *batch.Batcher[check, checked] {
	return batch.New(batch.Config{MaxBatch: checkBatch, MaxFlushes: checkFlushes, Timeout: checkTimeout}, g.flushChecks)
}

// flushChecks sends every check's commands in one pipeline.
func (g *Guard) flushChecks(ctx context.Context, cs []check, reply func(int, checked)) {
	pipe := redisscript.NewPipeline(g.rdb)
	out := make([]checked, len(cs))
	for i, c := range cs {
		n := len(c.subjects)
		r := checked{exists: make([]*redis.IntCmd, n), limits: make([]*redis.Cmd, n), firsts: make([]*redis.StatusCmd, n)}
		for j, s := range c.subjects {
			if c.lookup {
				r.exists[j] = pipe.Exists(ctx, g.keys.block(s))
			}
			rule := Rule{c.action, s.Kind}
			switch {
			case c.first(j):
				r.firsts[j] = firstToken(ctx, pipe, g.keys.limit(c.action, s), g.firstTTLs[rule])
			case c.wants[j] > 0:
				l, reserve := g.cfg.Limits[rule], 0.0
				if _, leased := g.leaseCaps[rule]; leased {
					reserve = g.cfg.Lease.Seconds()
				}
				r.limits[j] = pipe.Run(ctx, limitScript, []string{g.keys.limit(c.action, s)}, l.Burst, l.Rate, c.wants[j], reserve)
			}
		}
		out[i] = r
	}
	sent := time.Now()    // no later than Redis grants what is asked
	_, _ = pipe.Exec(ctx) // each command keeps its own error
	now := time.Now()
	for i, r := range out {
		r.err = firstErr(r)
		g.recordLeases(cs[i], r, sent, now)
		reply(i, r)
	}
}

// recordLeases tells the leases what each of c's asks of leased tokens
// got (nothing when its script failed), here rather than in Admit: the
// requests waiting on an ask are woken as soon as its answer is read, and
// an ask whose request stopped waiting is recorded all the same (its
// tokens are taken in Redis either way).
func (g *Guard) recordLeases(c check, r checked, sent, now time.Time) {
	for j, s := range c.subjects {
		rule := Rule{c.action, s.Kind}
		if _, ok := g.leaseCaps[rule]; !ok || c.wants[j] == 0 {
			continue
		}
		got := 0
		if reply, err := r.limits[j].Int64Slice(); err == nil && len(reply) == 2 {
			got = int(max(reply[0], 0))
		}
		g.leases.grant(poolKey{rule, s.ID}, c.wants[j], got, sent, now)
	}
}

// firstErr is the first error among r's replies (a first token's
// redis.Nil is none).
func firstErr(r checked) error {
	for j := range r.exists {
		if c := r.exists[j]; c != nil && c.Err() != nil {
			return c.Err()
		}
		if c := r.limits[j]; c != nil && c.Err() != nil {
			return c.Err()
		}
		if c := r.firsts[j]; c != nil && c.Err() != nil && !errors.Is(c.Err(), redis.Nil) {
			return c.Err()
		}
	}
	return nil
}
