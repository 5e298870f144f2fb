package abuse

import "github.com/redis/go-redis/v9"

// Lua scripts of the package. Each touches exactly one key (KEYS[1]).
// Times are the Redis server's clock in milliseconds, so workers whose
// clocks differ agree on when a block ends.

// indexAddScript enters a block in the blocks index: it drops the entries
// whose end has passed, adds or moves the block's entry (only ever later:
// ZADD GT, so the index never ends an entry before its block), and keeps
// the index key until its last entry ends.
//
//	KEYS[1] blocks index
//	ARGV[1] subject ("u:<id>" | "ip:<addr>")  ARGV[2] block time, ms
//	→ the block's end, ms since the epoch
var indexAddScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local till = now + tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], 'GT', till, ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return till`)

// indexListScript drops the index entries whose end has passed and returns
// the first ones left, soonest end first.
//
//	KEYS[1] blocks index
//	ARGV[1] most entries
//	→ {subject, ...}
var indexListScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)`)

// tripScript counts a tripped limit in the subject's current auto-block
// window, which starts with its first trip.
//
//	KEYS[1] trips counter
//	ARGV[1] window, ms
//	→ trips in the window, this one included
var tripScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`)

// limitScript is a GCRA rate limit, in the state format of
// github.com/go-redis/redis_rate (which the guard used before; workers of
// both versions share the state in a rolling upgrade): the key holds the
// theoretical arrival time (TAT) in seconds since 2017-01-01, and expires
// when the subject is back to a full burst. It grants as many of the
// wanted tokens as fit, moving the TAT on by one emission interval each,
// without putting it more than a burst, less the reserve, ahead of now;
// none fit: it refuses, with when one would. Wanting one with no reserve is
// redis_rate's Allow. A reserve is the lease of leased tokens (lease.go),
// which keeps them from ever letting more through than the limit. Unlike
// redis_rate it can be queued in a pipeline (internal/redisscript), so
// Admit checks the user's limit in the blocks' round trip.
//
// The state may also be firstMark, written by Admit's first-token path
// (firstToken) for a subject that had none: one token taken, TAT as far
// ahead of now as the key's time to live. That now is read after PTTL,
// whose clock (the call's in Redis 7.0, the script's start from 7.2) is
// never later than it, so the TAT read is never earlier than the key's
// end. (redis_rate reads firstMark as
// a TAT long past, a full burst: a worker of the old version may let one
// more request through in the fraction of a second such a key lives.)
//
//	KEYS[1] limit state ("rate:" + keys.rate)
//	ARGV[1] burst  ARGV[2] rate, requests a second
//	ARGV[3] tokens wanted (≥ 1)  ARGV[4] reserve, seconds of the burst left unused
//	→ {granted, 0} | {0, retry after in µs}
var limitScript = redis.NewScript(`
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1483228800) + tonumber(t[2]) / 1000000
local interval = 1 / tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local state = redis.call('GET', KEYS[1])
local tat = now
if state == '` + firstMark + `' then
  local left = math.max(0, redis.call('PTTL', KEYS[1]))
  local t2 = redis.call('TIME')
  tat = (tonumber(t2[1]) - 1483228800) + tonumber(t2[2]) / 1000000 + left / 1000
elseif state then
  tat = tonumber(state)
end
if tat < now then tat = now end
local limit = now + interval * tonumber(ARGV[1]) - tonumber(ARGV[4])
local n = math.min(want, math.max(0, math.floor((limit - tat) / interval)))
if n < want and tat + (n + 1) * interval <= limit then n = n + 1 end
while n > 0 and tat + n * interval > limit do n = n - 1 end
if n == 0 then return {0, math.ceil((tat + interval - limit) * 1000000)} end
local new_tat = tat + n * interval
redis.call('SET', KEYS[1], new_tat, 'EX', math.ceil(new_tat - now))
return {n, 0}`)
