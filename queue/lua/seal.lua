-- seal stores, under the caller's lease, the encoded messages of a ready
-- chunk (see pop.lua's prepare mode), so that whoever begins it publishes
-- them as they are. Nothing is stored when the chunk has begun or is gone,
-- or when an item was withdrawn from it after it was taken (its pushes are
-- then built again at begin).
-- KEYS[1] ready  KEYS[2] prep  KEYS[3] lease  KEYS[4] high ready  KEYS[5] low ready
-- ARGV[1] lease token  ARGV[2] chunk id  ARGV[3] encoded messages
-- Returns 1 if stored, 0 if not; a lost lease is an error.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return redis.error_reply('LEASE lost') end
if not redis.call('ZSCORE', ready_of({KEYS[4], KEYS[1], KEYS[5]}, ARGV[2]), ARGV[2]) then return 0 end
if redis.call('HEXISTS', KEYS[2], ARGV[2] .. ':w') == 1 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2] .. ':e', ARGV[3])
return 1
