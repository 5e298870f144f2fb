-- ack records, under the caller's lease, that nsqd accepted these pushes:
-- they leave the flight set and wait in the marks set until MySQL knows.
-- KEYS[1] flight  KEYS[2] marks  KEYS[3] lease
-- ARGV[1] lease token  ARGV[2] now ms ("" = Redis clock)  ARGV[3..] pushes
-- Returns how many pushes were still in flight; a lost lease is an error.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return redis.error_reply('LEASE lost') end
local now = now_ms(ARGV[2])
local n = 0
for i = 3, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[2], now, ARGV[i])
    n = n + 1
  end
end
return n
