package coupon

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/batch"
	"couponpush/internal/redisscript"
)

// pipeliner sends the script calls of concurrent claims to Redis together
// (see internal/batch): calls that arrive while a pipeline is on the wire
// wait and go in the next one, one write and one read for all of them.
// Nothing waits on purpose: a lone call is sent at once. It is the Redis
// side of what claimWriter does for MySQL, and it cuts the syscalls per
// claim several-fold under load.
type pipeliner struct {
	rdb   redis.UniversalClient
	batch *batch.Batcher[scriptCall, *redis.Cmd]
}

type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
}

// pipelineTimeout bounds one shared pipeline; each caller still stops
// waiting when its own context ends.
const pipelineTimeout = 5 * time.Second

func newPipeliner(rdb redis.UniversalClient) *pipeliner {
	p := &pipeliner{rdb: rdb}
	p.batch = batch.New(batch.Config{MaxBatch: 256, MaxFlushes: 4, Timeout: pipelineTimeout}, p.flush)
	return p
}

// run runs script with keys and args in the next pipeline and returns its
// reply.
func (p *pipeliner) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	cmd, err := p.batch.Do(ctx, scriptCall{script: script, keys: keys, args: args})
	if err != nil {
		cmd = redis.NewCmd(ctx)
		cmd.SetErr(err)
	}
	return cmd
}

func (p *pipeliner) flush(ctx context.Context, calls []scriptCall, reply func(int, *redis.Cmd)) {
	pipe := redisscript.NewPipeline(p.rdb)
	pipe.Grow(len(calls))
	cmds := make([]*redis.Cmd, len(calls))
	for i, c := range calls {
		cmds[i] = pipe.Run(ctx, c.script, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // each command keeps its own error
	for i, cmd := range cmds {
		reply(i, cmd)
	}
}
