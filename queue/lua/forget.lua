-- forget drops acked chunks whose sent-marks reached MySQL: their entries
-- in the marks set and their users' taken entries (F, or P without a due
-- score: see prelude.lua). Idempotent: a chunk already forgotten is
-- skipped, so two workers may run it for the same chunk.
-- The items' held entries (of a chunk that was prepared) go too.
-- KEYS[1] marks  KEYS[2] items  KEYS[3] due  KEYS[4] held  KEYS[5] high due
-- KEYS[6] low due
-- ARGV[1..] chunks
-- Returns how many chunks were forgotten now.
local D = {KEYS[5], KEYS[3], KEYS[6]}
local n = 0
for c = 1, #ARGV do
  local chunk = ARGV[c]
  if redis.call('ZREM', KEYS[1], chunk) == 1 then
    n = n + 1
    local users, done, held = {}, {}, {}
    for line in string.gmatch(chunk, '[^\n]+') do
      local user, rest = string.match(line, '^(%d+)|(.*)$')
      users[#users + 1] = user
      local set = {}
      for tid, ms in string.gmatch(rest, '(%d+):(%d+)') do
        set[tid .. ':' .. ms] = true
        held[#held + 1] = user .. ':' .. tid
      end
      done[#users] = set
    end
    bulk('HDEL', KEYS[4], held)
    local recs = redis.call('HMGET', KEYS[2], unpack(users))
    local hset, hdel = {}, {}
    for i, user in ipairs(users) do
      local rec = recs[i]
      if rec then
        local tid, ms, st = string.match(rec, '^(%d+),(%d+),%d+,([FP])%l?;$')
        if tid and st == 'P' and scored(D, user) then tid = nil end
        if tid and done[i][tid .. ':' .. ms] then
          hdel[#hdel + 1] = user
        else
          local keep = {}
          for _, e in ipairs(resolve(D, user, parse(rec))) do
            if not (e.st == 'F' and done[i][e.tid .. ':' .. string.format('%d', e.ms)]) then keep[#keep + 1] = e end
          end
          if #keep == 0 then
            hdel[#hdel + 1] = user
          else
            hset[#hset + 1] = user
            hset[#hset + 1] = pack(keep)
          end
        end
      end
    end
    if #hset > 0 then bulk('HSET', KEYS[2], hset) end
    if #hdel > 0 then bulk('HDEL', KEYS[2], hdel) end
  end
end
return n
