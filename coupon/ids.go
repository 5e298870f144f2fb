package coupon

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// idBlock is how many coupon ids one Redis INCRBY reserves for a process.
const idBlock = 512

// floorScript raises the id counter to at least ARGV[1] (MySQL's largest
// coupon id), so ids stay unique even after Redis lost the counter.
//
//	KEYS[1] the id counter  ARGV[1] floor
var floorScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1`)

// idAllocator hands out coupon ids in blocks from a Redis counter, so a
// batch INSERT knows its rows' ids without reading them back. The first
// block of a process (and the first after reset) floors the counter to
// MySQL's largest id.
type idAllocator struct {
	s   *Service
	key string

	mu         sync.Mutex
	floored    bool
	nextID, hi int64 // nextID is the next id to give; hi is the last of the block
}

func (a *idAllocator) next(ctx context.Context, n int) ([]int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]int64, 0, n)
	for len(out) < n {
		if a.nextID > a.hi {
			if err := a.refill(ctx, int64(max(idBlock, n-len(out)))); err != nil {
				return nil, err
			}
		}
		out = append(out, a.nextID)
		a.nextID++
	}
	return out, nil
}

func (a *idAllocator) refill(ctx context.Context, size int64) error {
	if !a.floored {
		var maxID int64
		if err := a.s.db.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM coupons").Scan(&maxID); err != nil {
			return fmt.Errorf("read the largest coupon id: %w", err)
		}
		if err := floorScript.Run(ctx, a.s.rdb, []string{a.key}, maxID).Err(); err != nil {
			return fmt.Errorf("floor the coupon id counter: %w", err)
		}
		a.floored = true
	}
	hi, err := a.s.rdb.IncrBy(ctx, a.key, size).Result()
	if err != nil {
		return fmt.Errorf("reserve coupon ids: %w", err)
	}
	a.nextID, a.hi = hi-size+1, hi
	return nil
}

// reset makes the next block floor the counter again and drops the rest of
// this one: an id was found taken.
func (a *idAllocator) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.floored = false
	a.nextID, a.hi = 1, 0
}
