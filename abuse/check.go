package abuse

import (
	"context"
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
	wants    []int // tokens to ask of subject i's limit (0: none, as it has no limit or was admitted from leased ones)
}

// checked is a check's replies, in the order of its subjects: exists[i]
// the block lookup of subject i, limits[i] its limit (nil where none was
// asked of). err is the first error among them.
type checked struct {
	exists []*redis.IntCmd
	limits []*redis.Cmd
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
		r := checked{exists: make([]*redis.IntCmd, len(c.subjects)), limits: make([]*redis.Cmd, len(c.subjects))}
		for j, s := range c.subjects {
			r.exists[j] = pipe.Exists(ctx, g.keys.block(s))
			if want := c.wants[j]; want > 0 {
				rule := Rule{c.action, s.Kind}
				l, reserve := g.cfg.Limits[rule], 0.0
				if _, leased := g.leaseCaps[rule]; leased {
					reserve = g.cfg.Lease.Seconds()
				}
				r.limits[j] = pipe.Run(ctx, limitScript, []string{g.keys.limit(c.action, s)}, l.Burst, l.Rate, want, reserve)
			}
		}
		out[i] = r
	}
	_, _ = pipe.Exec(ctx) // each command keeps its own error
	for i, r := range out {
		for j := range r.exists {
			if r.err = r.exists[j].Err(); r.err != nil {
				break
			}
			if l := r.limits[j]; l != nil {
				if r.err = l.Err(); r.err != nil {
					break
				}
			}
		}
		reply(i, r)
	}
}
