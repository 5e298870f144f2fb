-- pop takes, under the caller's lease, up to max_users users whose earliest
-- pending item is due and, for each, every pending item due within the merge
-- window of that earliest one. The taken items of one user form one fixed
-- push "user|tid:ms,tid:ms"; the pushes of one call form one chunk (pushes
-- joined by "\n"), stored in the flight set with a deadline and acked as a
-- whole. Taken items stay in their user's record as F entries until
-- forget.lua (see prelude.lua).
-- The popped users are the lowest ranks of the due set, so they leave it in
-- one ZREMRANGEBYRANK; the few with later work are added back. A record
-- that is a single pending item (the common case) is taken without building
-- tables or writing it: losing its due score makes its entry implicitly F.
-- Every other write is one variadic command per key.
-- KEYS[1] due  KEYS[2] items  KEYS[3] flight  KEYS[4] lease
-- ARGV[1] lease token  ARGV[2] now ms ("" = Redis clock)  ARGV[3] merge window ms
-- ARGV[4] max users  ARGV[5] flight deadline ms  ARGV[6] tombstone ttl ms
-- ARGV[7] max items per push: a user with more due within the window gets
-- its earliest ones now; the rest stay pending (already due) for the next pop.
-- Returns {next, chunk}: next is the queue's earliest remaining work time
-- (due user or flight deadline) or false; chunk is false when nothing was
-- due. A lost lease is an error.
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return redis.error_reply('LEASE lost') end
local now = now_ms(ARGV[2])
local window, ttl, max_items = tonumber(ARGV[3]), tonumber(ARGV[6]), tonumber(ARGV[7])
local users = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
if #users == 0 then return {next_work(KEYS[1], KEYS[3]), false} end
local recs = redis.call('HMGET', KEYS[2], unpack(users))
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #users - 1)
local pushes, hset, hdel, zadd = {}, {}, {}, {}
local np, nh = 0, 0 -- lengths of pushes and hset
for i = 1, #users do
  local user, rec = users[i], recs[i]
  local tid, ms
  if rec then tid, ms = string.match(rec, '^(%d+),(%d+),%d+,P;$') end
  if tid and tonumber(ms) <= now then
    np = np + 1
    pushes[np] = user .. '|' .. tid .. ':' .. ms
  else
    local list = parse(rec)
    local first = nil
    for _, e in ipairs(list) do
      if e.st == 'P' and e.ms <= now and (first == nil or e.ms < first) then first = e.ms end
    end
    local keep, taken = {}, {}
    for _, e in ipairs(list) do
      if first and e.st == 'P' and e.ms <= first + window then
        taken[#taken + 1] = e
        keep[#keep + 1] = e
      elseif (e.st == 'C' or e.st == 'S') and e.ms + ttl <= now then
        -- remembered long enough: nothing older can arrive any more
      else
        keep[#keep + 1] = e
      end
    end
    if #taken > 0 then
      table.sort(taken, function(a, b)
        if a.ms ~= b.ms then return a.ms < b.ms end
        return a.tid < b.tid
      end)
      for j = #taken, max_items + 1, -1 do taken[j] = nil end
      for _, e in ipairs(taken) do e.st = 'F' end
      local parts = {}
      for j, e in ipairs(taken) do parts[j] = e.tid .. ':' .. string.format('%d', e.ms) end
      np = np + 1
      pushes[np] = user .. '|' .. table.concat(parts, ',')
    end
    if #keep == 0 then
      hdel[#hdel + 1] = user
    else
      nh = nh + 2
      hset[nh - 1] = user
      hset[nh] = pack(keep)
      local s = score(keep, ttl)
      if s then
        zadd[#zadd + 1] = s
        zadd[#zadd + 1] = user
      end
    end
  end
end
if nh > 0 then bulk('HSET', KEYS[2], hset) end
if #hdel > 0 then bulk('HDEL', KEYS[2], hdel) end
if #zadd > 0 then bulk('ZADD', KEYS[1], zadd) end
local chunk = false
if np > 0 then
  chunk = table.concat(pushes, '\n')
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), chunk)
end
return {next_work(KEYS[1], KEYS[3]), chunk}
