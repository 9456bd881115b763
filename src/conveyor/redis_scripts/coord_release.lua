-- release: give a slot back.
-- ARGV[3] key; ARGV[4] holder.
-- Keys touched: P.."c:slot:"..key [zset] ZSCORE, ZREM; P.."c:held:"..holder [set] SREM.
-- Returns 1 when the holder had a live slot, else 0.
local key, holder = P .. 'c:slot:' .. ARGV[3], ARGV[4]
local until_ = redis.call('ZSCORE', key, holder)
redis.call('ZREM', key, holder)
redis.call('SREM', P .. 'c:held:' .. holder, ARGV[3])
if until_ and tonumber(until_) > NOW then
  return 1
end
return 0
