-- replay puts dead-lettered pushes back in flight, unchanged (same items,
-- so the same push id), as chunks of at most ARGV[2] pushes whose deadline
-- is now: the queue's lease holder recovers and publishes them like the
-- flights of a worker that died. Only a lease holder creates flights in
-- pop.lua, but any flight is recovered once its deadline passes, so replay
-- needs no lease. Pushes not in the dead hash are skipped.
-- KEYS[1] dead  KEYS[2] flight
-- ARGV[1] now ms ("" = Redis clock)  ARGV[2] most pushes per chunk
-- ARGV[3..] push lines; none: every push of the dead hash
-- Returns how many pushes were put back.
local lines = {}
if #ARGV < 3 then
  local all = redis.call('HKEYS', KEYS[1])
  table.sort(all)
  lines = all
else
  for i = 3, #ARGV do lines[#lines + 1] = ARGV[i] end
end
local now = now_ms(ARGV[1])
local per = tonumber(ARGV[2])
local chunk, n = {}, 0
for _, line in ipairs(lines) do
  if redis.call('HDEL', KEYS[1], line) == 1 then
    n = n + 1
    chunk[#chunk + 1] = line
    if #chunk == per then
      redis.call('ZADD', KEYS[2], now, table.concat(chunk, '\n'))
      chunk = {}
    end
  end
end
if #chunk > 0 then redis.call('ZADD', KEYS[2], now, table.concat(chunk, '\n')) end
return n
