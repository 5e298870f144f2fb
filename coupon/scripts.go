package coupon

import "github.com/redis/go-redis/v9"

// Lua scripts of the claim path. Each touches exactly one key (KEYS[1]) and
// checks everything before its first write, since a script does not roll
// back. Times are the Redis server's clock in milliseconds.

// reserveScript reserves a request_id for a user and takes the lowest free
// per-user slot, in one step on the user's key.
//
//	KEYS[1] user hash
//	ARGV[1] request_id  ARGV[2] per-user limit  ARGV[3] key expiry, ms since the epoch
//	→ {"have", entry, now} | {"new", slot, now} | {"limit", "", now}
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local have = redis.call('HGET', KEYS[1], 'r:' .. ARGV[1])
if have then return {'have', have, now} end
for s = 1, tonumber(ARGV[2]) do
  if redis.call('HEXISTS', KEYS[1], 's:' .. s) == 0 then
    redis.call('HSET', KEYS[1], 'r:' .. ARGV[1], 'p|' .. s .. '|' .. now, 's:' .. s, ARGV[1])
    redis.call('PEXPIREAT', KEYS[1], ARGV[3])
    return {'new', tostring(s), now}
  end
end
return {'limit', '', now}`)

// unreserveScript gives a pending reservation and its slot back.
//
//	KEYS[1] user hash
//	ARGV[1] request_id  ARGV[2] the reservation's entry as reserved
//	→ 1 if given back, 0 if the entry had changed
var unreserveScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'r:' .. ARGV[1]) ~= ARGV[2] then return 0 end
local slot = string.match(ARGV[2], '^p|(%d+)|')
redis.call('HDEL', KEYS[1], 'r:' .. ARGV[1])
if slot and redis.call('HGET', KEYS[1], 's:' .. slot) == ARGV[1] then
  redis.call('HDEL', KEYS[1], 's:' .. slot)
end
return 1`)

// doneScript records that a reservation's coupon is in MySQL, so a retry
// of the request is answered without a write.
//
//	KEYS[1] user hash
//	ARGV[1] request_id  ARGV[2] "d|slot|coupon id"
//	→ 1 if recorded, 0 if there was no reservation
var doneScript = redis.NewScript(`
if not redis.call('HGET', KEYS[1], 'r:' .. ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'r:' .. ARGV[1], ARGV[2])
return 1`)

// takeScript takes one coupon from a sub-stock and records a hold for the
// claim, so reconcile can find the claim if its process dies.
//
//	KEYS[1] sub-stock hash
//	ARGV[1] request_id  ARGV[2] user  ARGV[3] slot
//	ARGV[4] the reservation's time (Redis ms)  ARGV[5] budget ms
//	→ seq (> 0) taken, or one of the take* results below
var takeScript = redis.NewScript(`
-- Results other than a seq (> 0); takeEmpty.. in scripts.go name them:
--   -1 empty: no coupon left here
--   -2 missing: no such sub-stock
--   -3 late: the reservation is older than the budget
--   -4 held: the request already holds a coupon here
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local left = redis.call('HGET', KEYS[1], 'left')
if not left then return -2 end -- every credited sub-stock has the field
if now - tonumber(ARGV[4]) > tonumber(ARGV[5]) then return -3 end
if tonumber(left) <= 0 then return -1 end
if redis.call('HEXISTS', KEYS[1], 'h:' .. ARGV[1]) == 1 then return -4 end
redis.call('HINCRBY', KEYS[1], 'left', -1)
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'h:' .. ARGV[1], ARGV[2] .. '|' .. ARGV[3] .. '|' .. seq .. '|' .. now)
return seq`)

// Results of takeScript other than a seq (> 0), as its Lua lists them.
const (
	takeEmpty   = -1 // no coupon left in the sub-stock
	takeMissing = -2 // no such sub-stock
	takeLate    = -3 // the reservation is older than the write budget
	takeHeld    = -4 // the request already holds a coupon here
)

// givebackScript returns a hold's coupon to its sub-stock: only that hold
// (same seq), and only once.
//
//	KEYS[1] sub-stock hash
//	ARGV[1] request_id  ARGV[2] seq
//	→ 1 given back | 0 no such hold
var givebackScript = redis.NewScript(`
local h = redis.call('HGET', KEYS[1], 'h:' .. ARGV[1])
if not h then return 0 end
local seq = string.match(h, '^[^|]*|[^|]*|(%d+)|')
if seq ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], 'h:' .. ARGV[1])
redis.call('HINCRBY', KEYS[1], 'left', 1)
return 1`)

// releaseScript drops a hold whose coupon is in MySQL (the coupon stays
// taken).
//
//	KEYS[1] sub-stock hash
//	ARGV[1] request_id  ARGV[2] seq
//	→ 1 released | 0 no such hold
var releaseScript = redis.NewScript(`
local h = redis.call('HGET', KEYS[1], 'h:' .. ARGV[1])
if not h then return 0 end
local seq = string.match(h, '^[^|]*|[^|]*|(%d+)|')
if seq ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], 'h:' .. ARGV[1])
return 1`)

// creditScript applies one stock add's share to a sub-stock, once.
//
//	KEYS[1] sub-stock hash
//	ARGV[1] add id  ARGV[2] amount (≥ 0)
//	→ 1 applied now | 0 applied before
var creditScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[1], 'a:' .. ARGV[1], '1') == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'left', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'quota', ARGV[2])
redis.call('HSETNX', KEYS[1], 'seq', '0')
return 1`)

// snapshotScript reads a sub-stock whole, with the Redis time.
//
//	KEYS[1] sub-stock hash
//	→ {now ms, field, value, field, value, ...}
var snapshotScript = redis.NewScript(`
local t = redis.call('TIME')
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
return out`)

// repairScript moves a sub-stock's left by delta, only if no take happened
// since the snapshot the delta was computed from (seq unchanged). left
// never goes below 0.
//
//	KEYS[1] sub-stock hash
//	ARGV[1] seq at the snapshot  ARGV[2] delta
//	→ {repairApplied, new left} | {0, seq now}: the sub-stock moved on
var repairScript = redis.NewScript(`
-- {1, left}: applied (repairApplied in scripts.go); {0, seq}: the
-- sub-stock moved on, nothing changed.
local seq = redis.call('HGET', KEYS[1], 'seq') or '0'
if seq ~= ARGV[1] then return {0, tonumber(seq)} end
local left = tonumber(redis.call('HGET', KEYS[1], 'left') or '0') + tonumber(ARGV[2])
if left < 0 then left = 0 end
redis.call('HSET', KEYS[1], 'left', left)
return {1, left}`)

// repairApplied is the first element of repairScript's reply when it moved
// left; otherwise a take happened since the snapshot and nothing changed.
const repairApplied = 1
