-- begin starts the publish of prepared chunks (see pop.lua's prepare mode)
-- whose publish time has come by the Redis clock, under the caller's
-- lease: each leaves the ready set for the flight set with a deadline,
-- exactly as pop.lua would have put it there, and from then on its items
-- are taken like any popped item (a cancel answers "taken"). The cost is
-- constant per chunk: nothing per item is written.
-- Chunks of several classes are begun most urgent first (pick in
-- prelude.lua), and one call begins chunks of one class only, so that a
-- scheduler may leave the queue for another's more urgent work in between.
-- KEYS[1] ready  KEYS[2] prep  KEYS[3] flight  KEYS[4] lease
-- KEYS[5] high ready  KEYS[6] low ready
-- ARGV[1] lease token  ARGV[2] now ms ("" = Redis clock)  ARGV[3] flight
-- deadline ms  ARGV[4] most chunks  ARGV[5] ageing ms per class
-- Returns {id, chunk, encoded or false, ...} for each chunk begun; a lost
-- lease is an error.
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return redis.error_reply('LEASE lost') end
local now = now_ms(ARGV[2])
local R = {KEYS[5], KEYS[1], KEYS[6]}
local ids = pick(R, now, tonumber(ARGV[4]), tonumber(ARGV[5]))
local out = {}
local cl = ids[1] and string.match(ids[1], '^(%l?)')
for _, id in ipairs(ids) do
  if string.match(id, '^(%l?)') ~= cl then break end
  local v = redis.call('HMGET', KEYS[2], id, id .. ':e')
  redis.call('ZREM', ready_of(R, id), id)
  redis.call('HDEL', KEYS[2], id, id .. ':e', id .. ':w')
  if v[1] then
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), v[1])
    out[#out + 1] = id
    out[#out + 1] = v[1]
    out[#out + 1] = v[2]
  end
end
return out
