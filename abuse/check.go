package abuse

import (
	"context"
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
}

// checked is a check's replies, one per subject in the order of its
// subjects. err is the first error among them.
type checked struct {
	subjects []subjectCheck
	err      error
}

// subjectCheck is one subject's reply: checkScript's where the subject's
// rule has a limit, else the block lookup alone.
type subjectCheck struct {
	check  *redis.Cmd    // checkScript: {blocked, admitted, retry after µs}
	exists *redis.IntCmd // EXISTS of the block, when there is no limit
}

func (c subjectCheck) err() error {
	if c.check != nil {
		return c.check.Err()
	}
	return c.exists.Err()
}

// result reads the reply: whether the subject is blocked, and whether its
// limit admits the request (true without a limit), or else when it would.
func (c subjectCheck) result() (blocked, admitted bool, retryAfter time.Duration, err error) {
	if c.check == nil {
		n, err := c.exists.Result()
		return n > 0, true, 0, err
	}
	res, err := c.check.Int64Slice()
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("check script answered %v", res)
	}
	if err != nil {
		return false, false, 0, err
	}
	return res[0] == 1, res[1] == 1, time.Duration(res[2]) * time.Microsecond, nil
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
		r := checked{subjects: make([]subjectCheck, len(c.subjects))}
		for j, s := range c.subjects {
			if l, ok := g.cfg.Limits[Rule{c.action, s.Kind}]; ok {
				r.subjects[j].check = pipe.Run(ctx, checkScript, []string{g.keys.block(s), g.keys.limit(c.action, s)}, l.Burst, l.Rate)
			} else {
				r.subjects[j].exists = pipe.Exists(ctx, g.keys.block(s))
			}
		}
		out[i] = r
	}
	_, _ = pipe.Exec(ctx) // each command keeps its own error
	for i, r := range out {
		for _, sc := range r.subjects {
			if r.err = sc.err(); r.err != nil {
				break
			}
		}
		reply(i, r)
	}
}
