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
-- ARGV[8] prepare horizon ms, or "ahead" for now + ARGV[11] ("" = pop what
-- is due now; see below)
-- ARGV[9] prepare span ms  ARGV[10] most ready chunks  ARGV[11] ahead ms
-- KEYS[5] ready  KEYS[6] prep  KEYS[7] held  KEYS[8] epoch
-- Returns {next, chunk, id}: next is the queue's earliest remaining work
-- time (see next_work) or false; chunk is false when nothing was taken; id
-- and at are the prepared chunk's id and publish time (ms), or false.
--
-- Prepare mode (ARGV[8] set) takes work ahead of due: the users whose
-- earliest score s0 is at most the horizon, and with it every user scored
-- up to s0 + span (never past the horizon), as if now were that cut. The
-- chunk goes to the ready set, scored s0 (its publish time), instead of
-- the flight set, and each taken item is held (see prelude.lua) so that a
-- cancel can still withdraw it until begin.lua. Nothing is prepared while
-- the queue is being moved (N changing) or holds ARGV[10] ready chunks.
-- Tombstones (and S entries) whose time is up by the cut are dropped, up to
-- the horizon early, so that a queue whose earliest score is a tombstone's
-- never holds up the work behind it.
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return redis.error_reply('LEASE lost') end
local now = now_ms(ARGV[2])
local window, ttl, max_items = tonumber(ARGV[3]), tonumber(ARGV[6]), tonumber(ARGV[7])
local max_ready, ahead = tonumber(ARGV[10]), tonumber(ARGV[11])
local may_prepare = ahead > 0 and redis.call('ZCARD', KEYS[5]) < max_ready and not moving(KEYS[8])
local cut, s0 = now, nil
if ARGV[8] ~= '' then
  local horizon = now + ahead
  if ARGV[8] ~= 'ahead' then horizon = tonumber(ARGV[8]) end
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if not may_prepare or not first[2] or tonumber(first[2]) > horizon then
    return {next_work(KEYS[1], KEYS[3], KEYS[5], ahead, may_prepare), false, false, false}
  end
  s0 = tonumber(first[2])
  cut = math.min(horizon, s0 + tonumber(ARGV[9]))
end
local users = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cut, 'LIMIT', 0, tonumber(ARGV[4]))
if #users == 0 then return {next_work(KEYS[1], KEYS[3], KEYS[5], ahead, may_prepare), false, false, false} end
local recs = redis.call('HMGET', KEYS[2], unpack(users))
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #users - 1)
local pushes, hset, hdel, zadd = {}, {}, {}, {}
local np, nh = 0, 0 -- lengths of pushes and hset
for i = 1, #users do
  local user, rec = users[i], recs[i]
  local tid, ms
  if rec then tid, ms = string.match(rec, '^(%d+),(%d+),%d+,P;$') end
  if tid and tonumber(ms) <= cut then
    np = np + 1
    pushes[np] = user .. '|' .. tid .. ':' .. ms
  else
    local list = parse(rec)
    local first = nil
    for _, e in ipairs(list) do
      if e.st == 'P' and e.ms <= cut and (first == nil or e.ms < first) then first = e.ms end
    end
    local keep, taken = {}, {}
    for _, e in ipairs(list) do
      if first and e.st == 'P' and e.ms <= first + window then
        taken[#taken + 1] = e
        keep[#keep + 1] = e
      elseif (e.st == 'C' or e.st == 'S') and e.ms + ttl <= cut then
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
local chunk, id = false, false
if np > 0 then
  chunk = table.concat(pushes, '\n')
  if s0 then
    id = tostring(redis.call('HINCRBY', KEYS[6], '#', 1))
    redis.call('ZADD', KEYS[5], s0, id)
    redis.call('HSET', KEYS[6], id, chunk)
    local hold = {}
    for i = 1, np do
      local user, rest = string.match(pushes[i], '^(%d+)|(.*)$')
      for tid in string.gmatch(rest, '(%d+):%d+') do
        hold[#hold + 1] = user .. ':' .. tid
        hold[#hold + 1] = id
      end
    end
    bulk('HSET', KEYS[7], hold)
    may_prepare = redis.call('ZCARD', KEYS[5]) < max_ready
  else
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), chunk)
  end
end
local at = false
if id then at = string.format('%d', s0) end
return {next_work(KEYS[1], KEYS[3], KEYS[5], ahead, may_prepare), chunk, id, at}
