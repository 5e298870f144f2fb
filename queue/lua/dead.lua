-- dead settles, under the caller's lease, a chunk some of whose pushes can
-- never be published (see DeadLetter in dead.go): the chunk leaves the
-- flight set, the pushes nsqd accepted wait in the marks set as an acked
-- chunk of their own, and the others go to the queue's dead-letter hash
-- with the time and the reason. Their items stay taken (F) in their users'
-- records, so neither a retried PUT nor the safety net indexes them again
-- while MySQL still says pending. Nothing is written when the hash would
-- pass its bound: the chunk stays in flight.
-- KEYS[1] flight  KEYS[2] marks  KEYS[3] dead  KEYS[4] lease
-- ARGV[1] lease token  ARGV[2] now ms ("" = Redis clock)  ARGV[3] most pushes
-- the dead hash may hold  ARGV[4] chunk  ARGV[5] the accepted pushes as a
-- chunk, or ""  ARGV[6..] push line, reason pairs
-- Returns 1 if settled, 0 if the chunk was not in flight; a lost lease or a
-- full dead hash is an error.
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return redis.error_reply('LEASE lost') end
if not redis.call('ZSCORE', KEYS[1], ARGV[4]) then return 0 end
local fresh = 0
for i = 6, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 0 then fresh = fresh + 1 end
end
if redis.call('HLEN', KEYS[3]) + fresh > tonumber(ARGV[3]) then return redis.error_reply('DEAD full') end
local now = now_ms(ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[4])
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[2], now, ARGV[5]) end
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[3], ARGV[i], string.format('%d', now) .. ' ' .. ARGV[i + 1])
end
return 1
