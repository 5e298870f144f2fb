-- pop takes, under the caller's lease, up to max_users users whose earliest
-- pending item is due and, for each, every pending item due within the merge
-- window of that earliest one. Each user's taken items become one fixed push
-- "user|tid:ms,tid:ms" stored in the flight set with a deadline; the items
-- stay in the user's record as state F until MySQL knows they were sent.
-- KEYS[1] due  KEYS[2] items  KEYS[3] flight  KEYS[4] lease
-- ARGV[1] lease token  ARGV[2] now ms ("" = Redis clock)  ARGV[3] merge window ms
-- ARGV[4] max users  ARGV[5] flight deadline ms  ARGV[6] tombstone ttl ms
-- Returns {next, push, push, ...}: next is the queue's earliest remaining
-- work time (due user or flight deadline) or false; a lost lease is an error.
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return redis.error_reply('LEASE lost') end
local now = now_ms(ARGV[2])
local window, ttl = tonumber(ARGV[3]), tonumber(ARGV[6])
local deadline = now + tonumber(ARGV[5])
local users = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
local out = {false}
for _, user in ipairs(users) do
  local list = parse(redis.call('HGET', KEYS[2], user))
  local first = nil
  for i = 1, #list do
    local e = list[i]
    if e.st == 'P' and e.ms <= now and (first == nil or e.ms < first) then first = e.ms end
  end
  local keep, taken = {}, {}
  for i = 1, #list do
    local e = list[i]
    if first and e.st == 'P' and e.ms <= first + window then
      e.st = 'F'
      taken[#taken + 1] = e
      keep[#keep + 1] = e
    elseif e.st == 'C' and e.ms + ttl <= now then
      -- tombstone past its time: nothing older can arrive any more
    else
      keep[#keep + 1] = e
    end
  end
  if #taken > 0 then
    table.sort(taken, function(a, b)
      if a.ms ~= b.ms then return a.ms < b.ms end
      return a.tid < b.tid
    end)
    local parts = {}
    for i = 1, #taken do parts[i] = taken[i].tid .. ':' .. string.format('%d', taken[i].ms) end
    local push = user .. '|' .. table.concat(parts, ',')
    redis.call('ZADD', KEYS[3], deadline, push)
    out[#out + 1] = push
  end
  store(KEYS[1], KEYS[2], user, keep, ttl)
end
local nd = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local nf = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local nxt = nil
if nd[2] then nxt = tonumber(nd[2]) end
if nf[2] and (nxt == nil or tonumber(nf[2]) < nxt) then nxt = tonumber(nf[2]) end
if nxt then out[1] = string.format('%d', nxt) end
return out
