package coupon

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// pipeliner sends the script calls of concurrent claims to Redis together:
// calls that arrive while a pipeline is on the wire wait and go in the next
// one, one write and one read for all of them. Nothing waits on purpose: a
// lone call is sent at once. It is the Redis side of what claimWriter does
// for MySQL, and it cuts the syscalls per claim several-fold under load.
type pipeliner struct {
	rdb      redis.UniversalClient
	maxBatch int
	limit    int

	mu      sync.Mutex
	queue   []*pipeCall
	running int
}

type pipeCall struct {
	ctx    context.Context
	script *redis.Script
	keys   []string
	args   []any
	res    any
	err    error
	done   chan struct{}
}

// pipelineTimeout bounds one shared pipeline; each caller still stops
// waiting when its own context ends.
const pipelineTimeout = 5 * time.Second

func newPipeliner(rdb redis.UniversalClient) *pipeliner {
	return &pipeliner{rdb: rdb, maxBatch: 256, limit: 4}
}

// run runs script with keys and args in the next pipeline and returns its
// reply.
func (p *pipeliner) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	c := &pipeCall{ctx: ctx, script: script, keys: keys, args: args, done: make(chan struct{})}
	p.mu.Lock()
	p.queue = append(p.queue, c)
	lead := p.running < p.limit
	if lead {
		p.running++
	}
	p.mu.Unlock()
	if lead {
		p.drain()
	}
	cmd := redis.NewCmd(ctx)
	select {
	case <-c.done:
		cmd.SetVal(c.res)
		cmd.SetErr(c.err)
	case <-ctx.Done():
		cmd.SetErr(ctx.Err())
	}
	return cmd
}

func (p *pipeliner) drain() {
	for {
		p.mu.Lock()
		n := min(len(p.queue), p.maxBatch)
		if n == 0 {
			p.running--
			p.mu.Unlock()
			return
		}
		batch := p.queue[:n:n]
		p.queue = p.queue[n:]
		p.mu.Unlock()
		p.exec(batch)
	}
}

func (p *pipeliner) exec(batch []*pipeCall) {
	ctx, cancel := context.WithTimeout(context.Background(), pipelineTimeout)
	defer cancel()
	send := func(calls []*pipeCall, sha bool) []*redis.Cmd {
		pipe := p.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(calls))
		for i, c := range calls {
			if sha {
				cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
			} else {
				cmds[i] = c.script.Eval(ctx, pipe, c.keys, c.args...)
			}
		}
		_, _ = pipe.Exec(ctx) // each command keeps its own error
		return cmds
	}
	cmds := send(batch, true)
	var retry []*pipeCall
	for i, c := range batch {
		if err := cmds[i].Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			retry = append(retry, c)
			continue
		}
		c.res, c.err = cmds[i].Val(), cmds[i].Err()
		close(c.done)
	}
	if len(retry) == 0 {
		return
	}
	// A script not loaded yet (or flushed): EVAL loads it on the way.
	for i, cmd := range send(retry, false) {
		retry[i].res, retry[i].err = cmd.Val(), cmd.Err()
		close(retry[i].done)
	}
}
