-- move_done drops users from the moving hash once their records were merged
-- into their new queue; from then on their writes go there.
-- KEYS[1] moving
-- ARGV[1..] users
-- Returns how many were dropped.
return redis.call('HDEL', KEYS[1], unpack(ARGV))
