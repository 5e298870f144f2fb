-- forget drops pushes that MySQL now records as sent: their marks and the
-- users' F entries. Idempotent, so two workers may run it for the same push.
-- KEYS[1] marks  KEYS[2] items  KEYS[3] due
-- ARGV[1] tombstone ttl ms  ARGV[2..] pushes "user|tid:ms,..."
-- Returns how many marks were removed.
local ttl = tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV do
  local push = ARGV[i]
  if redis.call('ZREM', KEYS[1], push) == 1 then n = n + 1 end
  local user, rest = string.match(push, '^(%d+)|(.*)$')
  if user then
    local done = {}
    for tid, ms in string.gmatch(rest, '(%d+):(%d+)') do done[tid .. ':' .. ms] = true end
    local list = parse(redis.call('HGET', KEYS[2], user))
    local keep = {}
    for j = 1, #list do
      local e = list[j]
      if not (e.st == 'F' and done[e.tid .. ':' .. string.format('%d', e.ms)]) then keep[#keep + 1] = e end
    end
    if #keep ~= #list then store(KEYS[3], KEYS[2], user, keep, ttl) end
  end
end
return n
