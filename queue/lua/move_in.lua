-- move_in merges records moved out of another queue (move_out.lua) into
-- this one, entry by entry: the newer version wins, and an F entry (taken
-- here) is never replaced. Merging the same record twice changes nothing,
-- so a mover that died half-way can replay its moving hash.
-- KEYS[1] due  KEYS[2] items  KEYS[3] epoch  KEYS[4] high due  KEYS[5] low due
-- ARGV[1] layout (a move)  ARGV[2] tombstone ttl ms  ARGV[3] class window ms
-- ARGV[4..] user, record pairs
-- Returns the earliest due score written, or false.
local e = redis.call('GET', KEYS[3])
if e == false or string.match(e, '^(%d+):') ~= string.match(ARGV[1], '^(%d+):') then
  return redis.error_reply('STALE layout')
end
local D = {KEYS[4], KEYS[1], KEYS[5]}
local ttl, cwin = tonumber(ARGV[2]), tonumber(ARGV[3])
local best = nil
for i = 4, #ARGV, 2 do
  local user = ARGV[i]
  local list = load(D, KEYS[2], user)
  for _, s in ipairs(parse(ARGV[i + 1])) do
    local d = find(list, s.tid)
    if d == nil then
      list[#list + 1] = s
    elseif s.ver > d.ver and d.st ~= 'F' then
      d.ms, d.ver, d.st, d.cl = s.ms, s.ver, s.st, s.cl
    end
  end
  local sc = store(D, KEYS[2], user, list, ttl, cwin)
  if sc and (best == nil or sc < best) then best = sc end
end
if best then return string.format('%d', best) end
return false
