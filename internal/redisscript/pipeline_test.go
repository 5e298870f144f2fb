package redisscript_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"couponpush/internal/enginetest"
	"couponpush/internal/redisscript"
)

func TestMain(m *testing.M) { enginetest.MainNoLeaks(m) }

// incr counts its runs: a script run twice would show.
var incr = redis.NewScript(`return redis.call('INCR', KEYS[1])`)

// fail is a script whose error is its own, not NOSCRIPT.
var fail = redis.NewScript(`return redis.error_reply('BAD thing')`)

func TestPipeline(t *testing.T) {
	cases := []struct {
		name  string
		flush bool // SCRIPT FLUSH before the pipeline
		load  bool // load incr before the pipeline
	}{
		{"scripts loaded", false, true},
		{"scripts never loaded", false, false},
		{"scripts flushed", true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A private server: flushing the shared one's scripts would race other tests.
			p := enginetest.StartRedis(t)
			rdb := redis.NewClient(&redis.Options{Addr: p.Addr})
			t.Cleanup(func() { rdb.Close() })
			ctx := context.Background()
			if tc.load {
				if err := incr.Load(ctx, rdb).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if tc.flush {
				if err := rdb.ScriptFlush(ctx).Err(); err != nil {
					t.Fatal(err)
				}
			}
			pipe := redisscript.NewPipeline(rdb)
			pipe.Grow(3)
			a := pipe.Run(ctx, incr, []string{"a"})
			set := pipe.Set(ctx, "plain", "v", 0)
			b := pipe.Run(ctx, incr, []string{"a"})
			bad := pipe.Run(ctx, fail, nil)
			cmds, err := pipe.Exec(ctx)
			if len(cmds) != 4 {
				t.Fatalf("Exec returned %d commands, want 4", len(cmds))
			}
			if err == nil || !redis.HasErrorPrefix(err, "BAD") {
				t.Fatalf("Exec error %v, want the failing script's", err)
			}
			if n, err := a.Int(); err != nil || n != 1 {
				t.Errorf("first incr = %d, %v; want 1", n, err)
			}
			if n, err := b.Int(); err != nil || n != 2 {
				t.Errorf("second incr = %d, %v; want 2", n, err)
			}
			if err := set.Err(); err != nil {
				t.Errorf("SET: %v", err)
			}
			if err := bad.Err(); !redis.HasErrorPrefix(err, "BAD") {
				t.Errorf("failing script: %v, want its own error", err)
			}
			// Each script ran once, the plain command too.
			if n, err := rdb.Get(ctx, "a").Int(); err != nil || n != 2 {
				t.Errorf("counter = %d, %v; want 2", n, err)
			}
			// The fallback loaded the scripts: the next pipeline needs no EVAL.
			again := redisscript.NewPipeline(rdb)
			c := again.Run(ctx, incr, []string{"a"})
			if _, err := again.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if n, err := c.Int(); err != nil || n != 3 {
				t.Errorf("third incr = %d, %v; want 3", n, err)
			}
		})
	}
}

func TestPipelineEmpty(t *testing.T) {
	rdb := enginetest.Redis(t)
	cmds, err := redisscript.NewPipeline(rdb).Exec(context.Background())
	if err != nil || len(cmds) != 0 {
		t.Fatalf("empty Exec = %v, %v", cmds, err)
	}
}
