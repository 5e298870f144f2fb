// Package redisscript runs Lua scripts in Redis pipelines by EVALSHA, with
// the NOSCRIPT fallback: the one place that knows a script may be missing
// from the server's cache (a restart, a failover, SCRIPT FLUSH).
//
// A single call needs no help: redis.Script.Run already sends EVALSHA and
// then EVAL on NOSCRIPT. In a pipeline every command has gone out before any
// answer is read, so the fallback has to wait for Exec: Pipeline sends again,
// by EVAL (which loads the script on the way), exactly the script calls that
// were answered NOSCRIPT, and nothing else, so a script that ran is never
// run twice.
//
// The package imports nothing of the project: queue/, which imports nothing
// else of it, uses it.
package redisscript

import (
	"context"
	"slices"

	"github.com/redis/go-redis/v9"
)

// Pipeliner makes pipelines; redis.UniversalClient is one.
type Pipeliner interface {
	Pipeline() redis.Pipeliner
}

// Pipeline is a go-redis pipeline that also queues script calls (Run) and
// whose Exec falls back to EVAL for scripts the server did not have. Other
// commands are queued on it as on any redis.Pipeliner. Like a go-redis
// pipeline, it is not safe for concurrent use, and Exec empties it.
type Pipeline struct {
	redis.Pipeliner
	rdb   Pipeliner
	calls []call
}

type call struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

// NewPipeline returns an empty Pipeline on rdb.
func NewPipeline(rdb Pipeliner) *Pipeline {
	return &Pipeline{Pipeliner: rdb.Pipeline(), rdb: rdb}
}

// Grow makes room for n more script calls, for a caller that knows how
// many it will queue.
func (p *Pipeline) Grow(n int) { p.calls = slices.Grow(p.calls, n) }

// Run queues script with keys and args by EVALSHA and returns its command,
// which holds the script's reply after Exec (the EVAL's, if one was needed).
func (p *Pipeline) Run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	cmd := script.EvalSha(ctx, p.Pipeliner, keys, args...)
	p.calls = append(p.calls, call{script: script, keys: keys, args: args, cmd: cmd})
	return cmd
}

// Exec sends the queued commands in one round trip, then the script calls
// answered NOSCRIPT again by EVAL in a second one. Each command keeps its
// own reply and error; Exec returns the commands and the first error among
// them, as redis.Pipeliner.Exec does.
func (p *Pipeline) Exec(ctx context.Context) ([]redis.Cmder, error) {
	calls := p.calls
	p.calls = nil
	cmds, err := p.Pipeliner.Exec(ctx)
	if err == nil {
		return cmds, nil
	}
	var retry redis.Pipeliner
	var again []*redis.Cmd
	for i, c := range calls {
		if !redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			continue
		}
		if retry == nil {
			retry = p.rdb.Pipeline()
			again = make([]*redis.Cmd, len(calls))
		}
		again[i] = c.script.Eval(ctx, retry, c.keys, c.args...)
	}
	if retry == nil {
		return cmds, err
	}
	_, _ = retry.Exec(ctx) // each command keeps its own error
	for i, c := range calls {
		if a := again[i]; a != nil {
			c.cmd.SetVal(a.Val())
			c.cmd.SetErr(a.Err())
		}
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return cmds, err
		}
	}
	return cmds, nil
}
