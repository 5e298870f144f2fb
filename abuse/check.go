package abuse

import (
	"context"
	"errors"
	"fmt"
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

// answer is what a check got, by subject: blocked, and the tokens its
// limit granted (> 0), or minus the retry in µs when it refused (≤ 0). A
// first token is 1 when taken, 0 when the subject already had a limit
// state. err is the first error among the replies; a reply that came is
// read even so.
type answer struct {
	blocked []bool
	tokens  []int64
	err     error
}

// sent are one check's commands in a shared pipeline, by subject: the
// block lookup (nil without lookup), the limit script (nil where none was
// asked of) and the first token's write (nil where none was taken).
type sent struct {
	exists []*redis.IntCmd
	limits []*redis.Cmd
	firsts []*redis.StatusCmd
}

// Bounds of the shared check pipelines.
const (
	checkBatch   = 256 // most checks in one pipeline
	checkFlushes = 4   // most pipelines on the wire at once
	// checkTimeout bounds one shared pipeline; each Admit still stops
	// waiting when its own context ends.
	checkTimeout = 5 * time.Second
)

func (g *Guard) newChecks() *batch.Batcher[check, answer] {
	return batch.New(batch.Config{MaxBatch: checkBatch, MaxFlushes: checkFlushes, Timeout: checkTimeout}, g.flushChecks)
}

// flushChecks sends every check's commands in one pipeline and reads each
// check's answer.
func (g *Guard) flushChecks(ctx context.Context, cs []check, reply func(int, answer)) {
	pipe := redisscript.NewPipeline(g.rdb)
	out := make([]sent, len(cs))
	for i, c := range cs {
		n := len(c.subjects)
		r := sent{exists: make([]*redis.IntCmd, n), limits: make([]*redis.Cmd, n), firsts: make([]*redis.StatusCmd, n)}
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
	at := time.Now()      // no later than Redis grants what is asked
	_, _ = pipe.Exec(ctx) // each command keeps its own error
	now := time.Now()
	for i, r := range out {
		a := read(cs[i], r)
		g.recordLeases(cs[i], a, at, now)
		reply(i, a)
	}
}

// read reads c's replies r.
func read(c check, r sent) answer {
	n := len(c.subjects)
	a := answer{blocked: make([]bool, n), tokens: make([]int64, n)}
	fail := func(err error) {
		if a.err == nil {
			a.err = err
		}
	}
	for j, s := range c.subjects {
		if cmd := r.exists[j]; cmd != nil {
			if err := cmd.Err(); err != nil {
				fail(err)
			}
			a.blocked[j] = cmd.Val() > 0
		}
		if cmd := r.firsts[j]; cmd != nil {
			switch err := cmd.Err(); {
			case err == nil:
				a.tokens[j] = 1
			case !errors.Is(err, redis.Nil):
				fail(err)
			}
		}
		if cmd := r.limits[j]; cmd != nil {
			reply, err := cmd.Int64Slice()
			if err == nil && len(reply) != 2 {
				err = fmt.Errorf("limit script answered %v", reply)
			}
			switch {
			case err != nil:
				fail(fmt.Errorf("%s limit of %s: %w", c.action, s, err))
			case reply[0] > 0:
				a.tokens[j] = reply[0]
			default:
				a.tokens[j] = -reply[1] // refused: minus the retry, µs
			}
		}
	}
	return a
}

// recordLeases tells the leases what each of c's asks of leased tokens
// got (nothing when its script failed), here rather than in Admit: the
// requests waiting on an ask are woken as soon as its answer is read, and
// an ask whose request stopped waiting is recorded all the same (its
// tokens are taken in Redis either way).
func (g *Guard) recordLeases(c check, a answer, at, now time.Time) {
	for j, s := range c.subjects {
		rule := Rule{c.action, s.Kind}
		if _, ok := g.leaseCaps[rule]; ok && c.wants[j] > 0 {
			g.leases.grant(poolKey{rule, s.ID}, c.wants[j], int(max(a.tokens[j], 0)), at, now)
		}
	}
}
