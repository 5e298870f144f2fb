-- add indexes one pending reminder, or does nothing if the queue already
-- holds this (user, template) at an equal or newer version.
-- KEYS[1] due  KEYS[2] items  KEYS[3] epoch  KEYS[4] moving (KEYS[5..7]: as
-- cancel.lua, unused here)  KEYS[8] high due  KEYS[9] low due (KEYS[10..11]:
-- as cancel.lua)
-- ARGV[1] layout  ARGV[2] user  ARGV[3] template  ARGV[4] push ms
-- ARGV[5] version  ARGV[6] tombstone ttl ms  ARGV[7] this queue
-- ARGV[8] the user's home queue under the layout's target  ARGV[9] "1" forwarded
-- ARGV[10] most reminders (entries not cancelled) a user may hold here
-- ARGV[11] the reminder's class: h high, "" normal, l low
-- ARGV[12] class window ms (see class in prelude.lua)
-- Returns {status, x}: status 1 written (x: the user's score or false),
-- 0 unchanged (equal or newer version present, or the same version again
-- with another class: only its class is changed), 2 taken already (in flight
-- or sent), 3 refused (the user holds ARGV[10] reminders already), or a route status (-1 stale: x is this queue's layout, -2
-- forward, -3 retry; see route in prelude.lua).
local code, e = route(KEYS[3], KEYS[2], KEYS[4], ARGV[1], ARGV[2], ARGV[7], ARGV[8], ARGV[9])
if code then return {code, e or false} end
local D = {KEYS[8], KEYS[1], KEYS[9]}
local user, tid, cl = ARGV[2], ARGV[3], ARGV[11]
local ms, ver = tonumber(ARGV[4]), tonumber(ARGV[5])
local list = load(D, KEYS[2], user)
local found = find(list, tid)
if found then
  if found.ver > ver then return {0, false} end
  if found.ver == ver then
    -- A retried PUT after the template's priority changed: the pending
    -- reminder takes the new class; nothing else changes.
    if found.st ~= 'P' or (found.cl or '') == cl then return {0, false} end
    found.cl = cl
    store(D, KEYS[2], user, list, tonumber(ARGV[6]), tonumber(ARGV[12]))
    return {0, false}
  end
  if found.st == 'F' or found.st == 'S' then return {2, false} end
  found.ms, found.ver, found.st, found.cl = ms, ver, 'P', cl
else
  local held = 0
  for _, e in ipairs(list) do
    if e.st ~= 'C' then held = held + 1 end
  end
  if held >= tonumber(ARGV[10]) then return {3, false} end
  list[#list + 1] = {tid = tid, ms = ms, ver = ver, st = 'P', cl = cl}
end
local s = store(D, KEYS[2], user, list, tonumber(ARGV[6]), tonumber(ARGV[12]))
if s then return {1, string.format('%d', s)} end
return {1, false}
