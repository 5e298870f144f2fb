-- ack records, under the caller's lease, that nsqd accepted a chunk of
-- pushes: it leaves the flight set and waits in the marks set until MySQL
-- knows its reminders were sent.
-- KEYS[1] flight  KEYS[2] marks  KEYS[3] lease
-- ARGV[1] lease token  ARGV[2] now ms ("" = Redis clock)  ARGV[3] chunk
-- Returns 1 if the chunk was still in flight, 0 if not; a lost lease is an error.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return redis.error_reply('LEASE lost') end
if redis.call('ZREM', KEYS[1], ARGV[3]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], now_ms(ARGV[2]), ARGV[3])
return 1
