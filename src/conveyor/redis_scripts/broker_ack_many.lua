-- ack_many: broker_ack.lua for several deliveries in one call.
--
-- ARGV[3..]  pairs: id [string], token [string]
-- Keys touched, per id: P.."m:"..id [hash] HMGET t q, DEL; P.."l:"..Q [zset] ZREM id.
-- Returns a list of 1 (deleted) or 0 (stale token), in the order given.
local out = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local key = P .. 'm:' .. id
  local fields = redis.call('HMGET', key, 't', 'q')
  if fields[1] == ARGV[i + 1] then
    redis.call('DEL', key)
    redis.call('ZREM', P .. 'l:' .. fields[2], id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
