package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nsqio/go-nsq"
	"github.com/redis/go-redis/v9"
)

// rawPop is the floor the real pop is measured against: a bounded pop of
// due members with no merging, no tombstones, no flights, no lease.
// KEYS[1] due  ARGV[1] now ms  ARGV[2] max
var rawPop = redis.NewScript(`
local m = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #m > 0 then redis.call('ZREM', KEYS[1], unpack(m)) end
return m`)

// RawConfig says where Raw runs and how big it is.
type RawConfig struct {
	NSQDAddr string // nsqd's TCP address
	Topic    string // the NSQ topic published to
	Prefix   string // starts the Redis key of the sorted set
	Members  int    // how many members are loaded and popped
}

// RawResult is what Raw measured.
type RawResult struct {
	Took time.Duration // from the first pop to the last publish accepted
	// What else ran meanwhile: the machine's busy CPU time (all
	// processes) of its total, and redis-server's CPU time. A floor run
	// while MariaDB still purges the burst's rows shows here.
	Busy, Total, Redis time.Duration
}

// Raw loads cfg.Members members due at one millisecond into one sorted
// set, then pops them 1,000 at a time and MPUBs each chunk as 2 messages.
func Raw(ctx context.Context, rdb *redis.Client, cfg RawConfig) (RawResult, error) {
	nsqdAddr, topic, prefix, k := cfg.NSQDAddr, cfg.Topic, cfg.Prefix, cfg.Members
	key := prefix + ":raw:{due}"
	const due = 1_000_000
	for start := 0; start < k; start += 10_000 {
		pipe := rdb.Pipeline()
		zs := make([]redis.Z, 0, 10_000)
		for i := start; i < min(start+10_000, k); i++ {
			zs = append(zs, redis.Z{Score: due, Member: strconv.Itoa(i+1) + "|1:1000000"})
		}
		pipe.ZAdd(ctx, key, zs...)
		if _, err := pipe.Exec(ctx); err != nil {
			return RawResult{}, fmt.Errorf("raw load: %w", err)
		}
	}
	prod, err := nsq.NewProducer(nsqdAddr, nsq.NewConfig())
	if err != nil {
		return RawResult{}, err
	}
	defer prod.Stop()
	quiet(prod)
	mach0, cpu0 := machineCPU(), redisCPU(ctx, rdb)
	begin := time.Now()
	moved := 0
	for {
		m, err := rawPop.Run(ctx, rdb, []string{key}, due, 1000).StringSlice()
		if err != nil {
			return RawResult{}, fmt.Errorf("raw pop: %w", err)
		}
		if len(m) == 0 {
			break
		}
		half := len(m) / 2
		body := [][]byte{joined(m[:half]), joined(m[half:])}
		if err := prod.MultiPublish(topic, body); err != nil {
			return RawResult{}, fmt.Errorf("raw mpub: %w", err)
		}
		moved += len(m)
	}
	took := time.Since(begin)
	if moved != k {
		return RawResult{}, fmt.Errorf("raw moved %d of %d", moved, k)
	}
	busy, _, total := machineCPU().since(mach0)
	return RawResult{Took: took, Busy: busy, Total: total, Redis: redisCPU(ctx, rdb) - cpu0}, nil
}

func joined(m []string) []byte {
	var b []byte
	for _, s := range m {
		b = append(b, s...)
		b = append(b, '\n')
	}
	if len(b) == 0 {
		b = []byte{'\n'}
	}
	return b
}
