-- ack records, under the caller's lease, that nsqd accepted chunks of
-- pushes: each leaves the flight set and waits in the marks set until MySQL
-- knows its reminders were sent.
-- KEYS[1] flight  KEYS[2] marks  KEYS[3] lease
-- ARGV[1] lease token  ARGV[2] now ms ("" = Redis clock)  ARGV[3..] chunks
-- Returns how many of the chunks were still in flight; a lost lease is an
-- error.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return redis.error_reply('LEASE lost') end
local now, n = now_ms(ARGV[2]), 0
for i = 3, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[2], now, ARGV[i])
    n = n + 1
  end
end
return n
