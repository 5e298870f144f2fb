-- move_out takes users' records out of this queue, while N changes, into
-- the queue's moving hash, where they stay until move_in.lua has merged them
-- into their new queue and move_done.lua drops them. Writes for a user in
-- the moving hash are told to retry (route in prelude.lua), so a user's
-- record is in exactly one place at a time. Taken entries (F, explicit or
-- implicit) become S entries: the chunk that took them is forgotten here,
-- not in the new queue. An entry only prepared (in a ready chunk whose
-- publish has not begun, see prelude.lua) is withdrawn and moves pending.
-- KEYS[1] due  KEYS[2] items  KEYS[3] moving  KEYS[4] epoch
-- KEYS[5] ready  KEYS[6] prep  KEYS[7] held  KEYS[8] high due  KEYS[9] low due
-- KEYS[10] high ready  KEYS[11] low ready
-- ARGV[1] layout (a move)  ARGV[2..] users
-- Returns {user, record, ...} for the users that had a record here.
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return redis.error_reply('STALE layout') end
local D, R = {KEYS[8], KEYS[1], KEYS[9]}, {KEYS[10], KEYS[5], KEYS[11]}
local out = {}
for i = 2, #ARGV do
  local user = ARGV[i]
  local list = load(D, KEYS[2], user)
  if #list > 0 then
    for _, e in ipairs(list) do
      if e.st == 'F' then
        local id = prepared(R, KEYS[7], user, e.tid)
        if id then
          withdraw(R, KEYS[6], KEYS[7], id, user, e.tid)
          e.st = 'P'
        else
          e.st = 'S'
        end
      end
    end
    local rec = pack(list)
    redis.call('HSET', KEYS[3], user, rec)
    redis.call('HDEL', KEYS[2], user)
    for c = 1, 3 do redis.call('ZREM', D[c], user) end
    out[#out + 1] = user
    out[#out + 1] = rec
  end
end
return out
