-- cancel replaces a pending reminder by a tombstone at the given version, so
-- an older add that arrives late is ignored. A reminder already taken from
-- the queue cannot be cancelled, unless it was only prepared: one in a
-- ready chunk whose publish has not begun is withdrawn from it (see
-- prelude.lua) and cancelled like a pending one.
-- KEYS and ARGV as add.lua; KEYS[5] ready  KEYS[6] prep  KEYS[7] held
-- KEYS[10] high ready  KEYS[11] low ready (ARGV[11], the class, unused).
-- Returns {status, x}: 1 cancelled, 0 unchanged (newer version present),
-- 2 taken already, or a route status as add.lua.
local code, e = route(KEYS[3], KEYS[2], KEYS[4], ARGV[1], ARGV[2], ARGV[7], ARGV[8], ARGV[9])
if code then return {code, e or false} end
local D, R = {KEYS[8], KEYS[1], KEYS[9]}, {KEYS[10], KEYS[5], KEYS[11]}
local user, tid = ARGV[2], ARGV[3]
local ms, ver = tonumber(ARGV[4]), tonumber(ARGV[5])
local list = load(D, KEYS[2], user)
local found = find(list, tid)
if found then
  local id = nil
  if found.st == 'F' then id = prepared(R, KEYS[7], user, tid) end
  if found.st == 'S' or (found.st == 'F' and not id) then return {2, false} end
  if found.ver >= ver then return {0, false} end
  if id then withdraw(R, KEYS[6], KEYS[7], id, user, tid) end
  found.ms, found.ver, found.st = ms, ver, 'C'
else
  list[#list + 1] = {tid = tid, ms = ms, ver = ver, st = 'C'}
end
local s = store(D, KEYS[2], user, list, tonumber(ARGV[6]), tonumber(ARGV[12]))
if s then return {1, string.format('%d', s)} end
return {1, false}
