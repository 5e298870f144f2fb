-- lease renews (ARGV[2] > 0) or releases (ARGV[2] = 0) a queue's lease, only
-- for the holder of the token: a bare PEXPIRE would extend someone else's.
-- KEYS[1] lease  ARGV[1] token  ARGV[2] lease ms, or 0 to release
-- Returns 1 if the caller held the lease, 0 otherwise.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
