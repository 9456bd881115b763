-- acquire: take one of `limit` slots under key for holder; a holder keeps its own slot.
-- ARGV[3] key; ARGV[4] holder; ARGV[5] limit [integer]; ARGV[6] ttl [seconds].
-- Keys touched: P.."c:slot:"..key [zset] ZREMRANGEBYSCORE (expired holders), ZSCORE,
-- ZCARD, ZADD, PEXPIRE; P.."c:held:"..holder [set] SADD, PEXPIRE.
-- Returns 1 when the slot is held, 0 when all are taken by others.
local key, holder = P .. 'c:slot:' .. ARGV[3], ARGV[4]
local seconds = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', key, '-inf', NOWS)
if not redis.call('ZSCORE', key, holder) and redis.call('ZCARD', key) >= tonumber(ARGV[5]) then
  return 0
end
redis.call('ZADD', key, exact(NOW + seconds), holder)
keep_slots(key)
local held = P .. 'c:held:' .. holder
redis.call('SADD', held, ARGV[3])
redis.call('PEXPIRE', held, ttl_ms(seconds))
return 1
