-- Shared by every queue script (prepended in Go).
--
-- A user's record in the items hash is a list of "tid,ms,ver,state[class];"
-- entries:
--   tid   template id (kept as a string: ids may exceed a double's precision)
--   ms    push time in milliseconds since the epoch
--   ver   the MySQL row version that wrote this entry
--   state P pending | C cancelled (a tombstone) | F taken (popped: being or
--         already published, until MySQL records it as sent) | S taken from
--         another queue and moved here when N changed (see move_in.lua)
--   class the reminder's priority, stamped when it was indexed: h high,
--         l low, none normal (every record written before priorities)
-- A C entry is kept for tomb_ttl after its push time, so that a late, older
-- add cannot revive a cancel; the user's due score makes a pop visit the
-- record then and drop it. An F entry is kept until forget.lua runs for its
-- chunk (after MySQL's sent-mark), so a retried PUT cannot index a sent
-- reminder again; it has no due score. An S entry blocks writes like F, but
-- its chunk's forget runs in the queue it was taken from, so it is kept
-- for tomb_ttl after its push time, like a tombstone, and then dropped.
--
-- A taken entry may also be implicit: pop takes a record that is a single
-- pending entry (nearly every record in a burst) by dropping the user's due
-- score and leaving the record as it is, which saves rewriting it. So a P
-- entry of a user without a due score is taken. Every other writer gives a
-- record with a P entry a due score (store), and every script that reads a
-- record to decide on it goes through load, which makes such entries F.
local function parse(rec)
  local out = {}
  if rec then
    for tid, ms, ver, st, cl in string.gmatch(rec, '(%d+),(%d+),(%d+),(%u)(%l?);') do
      out[#out + 1] = {tid = tid, ms = tonumber(ms), ver = tonumber(ver), st = st, cl = cl}
    end
  end
  return out
end

local function pack(list)
  local parts = {}
  for i = 1, #list do
    local e = list[i]
    parts[i] = e.tid .. ',' .. string.format('%d', e.ms) .. ',' .. string.format('%d', e.ver) .. ',' .. e.st .. (e.cl or '') .. ';'
  end
  return table.concat(parts)
end

-- Priority. A queue has one due set per class, D = {high, normal, low} (the
-- normal one is the "due" key every queue had before priorities); a user
-- is in at most one of them, the class of its next push (class below).
-- Where more is due than one call takes, users go in order of their score
-- plus an ageing penalty per class below high (pick), so a lower class
-- waits behind a higher one but ages up and is never starved. Ready chunks
-- (below) are kept the same way, one ready set per class.
local CLASS = {h = 1, [''] = 2, l = 3}
local LETTER = {'h', '', 'l'}

-- scored reports whether user has a score in any set of D.
local function scored(D, user)
  return redis.call('ZSCORE', D[2], user) or redis.call('ZSCORE', D[1], user) or redis.call('ZSCORE', D[3], user)
end

-- class is the class (index into D) of list's next push: the most urgent
-- of its pending items due within window of its earliest pending one (the
-- items one pop merges into that push); normal when none is pending.
local function class(list, window)
  local first = nil
  for _, e in ipairs(list) do
    if e.st == 'P' and (first == nil or e.ms < first) then first = e.ms end
  end
  if first == nil then return 2 end
  local best = 3
  for _, e in ipairs(list) do
    if e.st == 'P' and e.ms <= first + window then best = math.min(best, CLASS[e.cl or ''] or 2) end
  end
  return best
end

-- pick takes up to max members scored at most cut from the sets S (one
-- per class, as D), most urgent first: by score plus age ms per class
-- below high, ties to the higher class. It returns them in that order and
-- how many came from each set; those are each set's lowest ranks.
local function pick(S, cut, max, age)
  local lists, pos, from, out = {}, {1, 1, 1}, {0, 0, 0}, {}
  for c = 1, 3 do
    lists[c] = redis.call('ZRANGEBYSCORE', S[c], '-inf', cut, 'WITHSCORES', 'LIMIT', 0, max)
  end
  while #out < max do
    local bc, be = nil, nil
    for c = 1, 3 do
      local v = lists[c][pos[c] + 1]
      if v then
        local e = tonumber(v) + (c - 1) * age
        if be == nil or e < be then bc, be = c, e end
      end
    end
    if not bc then break end
    out[#out + 1] = lists[bc][pos[bc]]
    pos[bc] = pos[bc] + 2
    from[bc] = from[bc] + 1
  end
  return out, from
end

-- single reports whether only the normal set of S holds anything: the
-- common case, where a call needs no ordering between classes.
local function single(S)
  return redis.call('EXISTS', S[1], S[3]) == 0
end

-- resolve makes the implicit taken entries of user's parsed record list
-- explicit (see above): a P entry of a user without a due score is F.
local function resolve(D, user, list)
  for i = 1, #list do
    if list[i].st == 'P' then
      if scored(D, user) then return list end
      for j = i, #list do
        if list[j].st == 'P' then list[j].st = 'F' end
      end
      return list
    end
  end
  return list
end

-- load reads user's record, resolved.
local function load(D, items, user)
  return resolve(D, user, parse(redis.call('HGET', items, user)))
end

-- find returns the entry for tid in list, or nil.
local function find(list, tid)
  for i = 1, #list do
    if list[i].tid == tid then return list[i] end
  end
  return nil
end

-- now returns the given time in ms, or the Redis server's clock when it is "".
local function now_ms(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- score is when a user next needs a pop: its earliest pending item, or the
-- moment a tombstone may be dropped. nil: nothing to pop.
local function score(list, tomb_ttl)
  local best = nil
  for i = 1, #list do
    local e = list[i]
    local s = nil
    if e.st == 'P' then s = e.ms elseif e.st == 'C' or e.st == 'S' then s = e.ms + tomb_ttl end
    if s and (best == nil or s < best) then best = s end
  end
  return best
end

-- store writes a user's record and due score back (in the due set of its
-- class, window as class takes it), or removes them.
local function store(D, items, user, list, tomb_ttl, window)
  if #list == 0 then
    redis.call('HDEL', items, user)
  else
    redis.call('HSET', items, user, pack(list))
  end
  local s = score(list, tomb_ttl)
  local c = class(list, window)
  for i = 1, 3 do
    if s and i == c then
      redis.call('ZADD', D[i], s, user)
    else
      redis.call('ZREM', D[i], user)
    end
  end
  return s
end

-- A layout is "gen:from:to": the queue count N is "to" once from = to, and
-- while from ~= to reminders are being moved from "from" queues to "to"
-- queues. Each queue's epoch key holds the layout it follows (absent: any,
-- a deployment that never set one).
local function layout_gen_to(s)
  local g, t = string.match(s, '^(%d+):%d+:(%d+)$')
  return g, t
end

-- route decides whether a write for user belongs in this queue (q) under
-- the caller's layout L; home is the user's queue under L's "to" count and
-- fwd is "1" when the write was forwarded here by the user's old queue.
-- Returns nil to write here, or a status: -1 stale layout (with this
-- queue's layout), -2 forward to home, -3 the user is being moved: retry.
-- While moving, a user with a record here stays here until the mover takes
-- it; one without a record belongs to its new home already.
local function route(epoch_key, items, moving, L, user, q, home, fwd)
  local E = redis.call('GET', epoch_key)
  if not E then return nil end
  if E == L then
    local f, t = string.match(L, '^%d+:(%d+):(%d+)$')
    if f == t or fwd == '1' then return nil end
    if redis.call('HEXISTS', moving, user) == 1 then return -3 end
    if home == q or redis.call('HEXISTS', items, user) == 1 then return nil end
    return -2
  end
  -- One side already finished the move of the same generation: writing to
  -- the user's final home is right.
  local eg, et = layout_gen_to(E)
  local lg, lt = layout_gen_to(L)
  if eg and eg == lg and et == lt and home == q then return nil end
  return -1, E
end

-- bulk runs one variadic command over args in slices, staying under Lua's
-- unpack limit.
local function bulk(cmd, key, args)
  local step = 2000
  for i = 1, #args, step do
    redis.call(cmd, key, unpack(args, i, math.min(i + step - 1, #args)))
  end
end

-- moving reports whether the queue's layout (its epoch key) is a move in
-- progress: no work is prepared ahead then (see prepare in pop.lua).
local function moving(epoch_key)
  local E = redis.call('GET', epoch_key)
  if not E then return false end
  local f, t = string.match(E, '^%d+:(%d+):(%d+)$')
  return f ~= t
end

-- next_work is when the queue next needs a worker, or false: its earliest
-- flight deadline, its earliest prepared chunk's publish time (ready sets
-- R), and its earliest due user (due sets D), ahead ms early when more may
-- be prepared (ahead > 0 and may_prepare).
local function next_work(D, flight, R, ahead, may_prepare)
  local nxt = nil
  local function consider(v)
    if v and (nxt == nil or v < nxt) then nxt = v end
  end
  for c = 1, 3 do
    local nd = redis.call('ZRANGE', D[c], 0, 0, 'WITHSCORES')
    if nd[2] then
      local d = tonumber(nd[2])
      if ahead > 0 and may_prepare then d = d - ahead end
      consider(d)
    end
  end
  for _, z in ipairs({flight, R[1], R[2], R[3]}) do
    local f = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
    if f[2] then consider(tonumber(f[2])) end
  end
  if nxt then return string.format('%d', nxt) end
  return false
end

-- Work prepared ahead of due (see pop.lua's prepare mode). A prepared chunk
-- has an id (a counter in the prep hash, after its class letter: "h17",
-- "17", "l17"); the ready set of its class (R, as D) scores it by its
-- publish time; the prep hash holds its pushes (field id, the chunk's
-- stored form), its encoded messages once sealed (id..':e') and a mark
-- that an item was withdrawn since it was sealed (id..':w'); the held hash
-- maps each taken item "user:tid" to the id of its chunk. Until begin.lua
-- moves the chunk into the flight set, an item may be withdrawn (a cancel,
-- a move); after, it is taken like any popped item.

-- ready_of is the ready set, of R, that holds chunk id.
local function ready_of(R, id)
  return R[CLASS[string.match(id, '^(%l?)')] or 2]
end

-- ready_count is how many chunks the ready sets R hold.
local function ready_count(R)
  return redis.call('ZCARD', R[1]) + redis.call('ZCARD', R[2]) + redis.call('ZCARD', R[3])
end

-- prepared returns the id of the ready chunk that holds user's item tid
-- and whose publish has not begun, or nil.
local function prepared(R, held, user, tid)
  local id = redis.call('HGET', held, user .. ':' .. tid)
  if id and redis.call('ZSCORE', ready_of(R, id), id) then return id end
  return nil
end

-- withdraw takes user's item tid out of ready chunk id (from prepared):
-- the chunk loses it (and the user's line when it was the line's last
-- item, and the chunk itself when it was the last line), its encoding is
-- dropped, and the item is no longer held.
local function withdraw(R, prep, held, id, user, tid)
  redis.call('HDEL', held, user .. ':' .. tid)
  local s = '\n' .. (redis.call('HGET', prep, id) or '') .. '\n'
  local a, b = string.find(s, '\n' .. user .. '|', 1, true)
  if a then
    local e = string.find(s, '\n', b + 1, true)
    local kept = {}
    for it in string.gmatch(string.sub(s, b + 1, e - 1), '[^,]+') do
      if string.match(it, '^(%d+):') ~= tid then kept[#kept + 1] = it end
    end
    local line = ''
    if #kept > 0 then line = '\n' .. user .. '|' .. table.concat(kept, ',') end
    s = string.sub(s, 1, a - 1) .. line .. string.sub(s, e)
  end
  local text = string.sub(s, 2, -2)
  if text == '' then
    redis.call('ZREM', ready_of(R, id), id)
    redis.call('HDEL', prep, id, id .. ':e', id .. ':w')
  else
    redis.call('HSET', prep, id, text, id .. ':w', '1')
    redis.call('HDEL', prep, id .. ':e')
  end
end
