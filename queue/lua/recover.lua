-- recover hands the caller, under its lease, chunks whose flight deadline
-- passed (or every flight when ARGV[5] is "1", used right after taking over
-- a queue: only a lease holder creates flights, so the previous holder's
-- are orphans). Each keeps its id and items; its deadline moves on.
-- KEYS[1] flight  KEYS[2] lease
-- ARGV[1] lease token  ARGV[2] now ms ("" = Redis clock)  ARGV[3] deadline ms
-- ARGV[4] max chunks  ARGV[5] "1" to take all
-- Returns the chunks; a lost lease is an error.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return redis.error_reply('LEASE lost') end
local now = now_ms(ARGV[2])
local upto = now
if ARGV[5] == '1' then upto = '+inf' end
local pushes = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', upto, 'LIMIT', 0, tonumber(ARGV[4]))
local deadline = now + tonumber(ARGV[3])
for _, p in ipairs(pushes) do redis.call('ZADD', KEYS[1], deadline, p) end
return pushes
