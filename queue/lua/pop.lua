-- pop takes, under the caller's lease, up to max_users users whose earliest
-- pending item is due and, for each, every pending item due within the merge
-- window of that earliest one. The taken items of one user form one fixed
-- push "user|tid:ms,tid:ms"; the pushes of one call form one chunk (pushes
-- joined by "\n"), stored in the flight set with a deadline and acked as a
-- whole. Taken items stay in their user's record as F entries until
-- forget.lua (see prelude.lua).
-- Users are taken most urgent first across the due sets of the classes
-- (pick in prelude.lua); the popped users are the lowest ranks of each set,
-- so they leave it in one ZREMRANGEBYRANK; the few with later work are
-- added back, to the set of their next push's class. A record
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
-- KEYS[9] high due  KEYS[10] low due  KEYS[11] high ready  KEYS[12] low ready
-- ARGV[12] ageing ms per class (see pick)  ARGV[13] class window ms
-- Returns {next, chunk, id}: next is the queue's earliest remaining work
-- time (see next_work) or false; chunk is false when nothing was taken; id
-- and at are the prepared chunk's id and publish time (ms), or false.
--
-- Prepare mode (ARGV[8] set) takes work ahead of due, one class at a time:
-- of the classes whose earliest score is at most the horizon, the most
-- urgent (as pick orders them); its users whose score is that earliest s0,
-- and with them every user of the class scored up to s0 + span (never past
-- the horizon), as if now were that cut. The chunk goes to its class's
-- ready set, scored s0 (its publish time), instead of the flight set, and each taken item is held (see prelude.lua) so that a
-- cancel can still withdraw it until begin.lua. Nothing is prepared while
-- the queue is being moved (N changing) or holds ARGV[10] ready chunks.
-- Tombstones (and S entries) whose time is up by the cut are dropped, up to
-- the horizon early, so that a queue whose earliest score is a tombstone's
-- never holds up the work behind it.
local D = {KEYS[9], KEYS[1], KEYS[10]}
local R = {KEYS[11], KEYS[5], KEYS[12]}
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return redis.error_reply('LEASE lost') end
local now = now_ms(ARGV[2])
local window, ttl, max_items = tonumber(ARGV[3]), tonumber(ARGV[6]), tonumber(ARGV[7])
local max_ready, ahead = tonumber(ARGV[10]), tonumber(ARGV[11])
local age, cwin = tonumber(ARGV[12]), tonumber(ARGV[13])
local max_users = tonumber(ARGV[4])
local may_prepare = ahead > 0 and ready_count(R) < max_ready and not moving(KEYS[8])
local cut, s0, pc = now, nil, nil
if ARGV[8] ~= '' then
  local horizon = now + ahead
  if ARGV[8] ~= 'ahead' then horizon = tonumber(ARGV[8]) end
  if may_prepare then
    local be = nil
    for c = 1, 3 do
      local first = redis.call('ZRANGE', D[c], 0, 0, 'WITHSCORES')
      if first[2] and tonumber(first[2]) <= horizon then
        local e = tonumber(first[2]) + (c - 1) * age
        if be == nil or e < be then be, pc, s0 = e, c, tonumber(first[2]) end
      end
    end
  end
  if not pc then
    return {next_work(D, KEYS[3], R, ahead, may_prepare), false, false, false}
  end
  cut = math.min(horizon, s0 + tonumber(ARGV[9]))
end
local users
if pc then
  users = redis.call('ZRANGEBYSCORE', D[pc], '-inf', cut, 'LIMIT', 0, max_users)
  if #users > 0 then redis.call('ZREMRANGEBYRANK', D[pc], 0, #users - 1) end
elseif single(D) then
  users = redis.call('ZRANGEBYSCORE', D[2], '-inf', cut, 'LIMIT', 0, max_users)
  if #users > 0 then redis.call('ZREMRANGEBYRANK', D[2], 0, #users - 1) end
else
  local from
  users, from = pick(D, cut, max_users, age)
  for c = 1, 3 do
    if from[c] > 0 then redis.call('ZREMRANGEBYRANK', D[c], 0, from[c] - 1) end
  end
end
if #users == 0 then return {next_work(D, KEYS[3], R, ahead, may_prepare), false, false, false} end
local recs = redis.call('HMGET', KEYS[2], unpack(users))
local pushes, hset, hdel, zadd = {}, {}, {}, {{}, {}, {}}
local np, nh = 0, 0 -- lengths of pushes and hset
for i = 1, #users do
  local user, rec = users[i], recs[i]
  local tid, ms
  if rec then tid, ms = string.match(rec, '^(%d+),(%d+),%d+,P%l?;$') end
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
        local z = zadd[class(keep, cwin)]
        z[#z + 1] = s
        z[#z + 1] = user
      end
    end
  end
end
if nh > 0 then bulk('HSET', KEYS[2], hset) end
if #hdel > 0 then bulk('HDEL', KEYS[2], hdel) end
for c = 1, 3 do
  if #zadd[c] > 0 then bulk('ZADD', D[c], zadd[c]) end
end
local chunk, id = false, false
if np > 0 then
  chunk = table.concat(pushes, '\n')
  if s0 then
    id = LETTER[pc] .. tostring(redis.call('HINCRBY', KEYS[6], '#', 1))
    redis.call('ZADD', R[pc], s0, id)
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
    may_prepare = ready_count(R) < max_ready
  else
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), chunk)
  end
end
local at = false
if id then at = string.format('%d', s0) end
return {next_work(D, KEYS[3], R, ahead, may_prepare), chunk, id, at}
