-- ack_many: broker_ack.lua for several deliveries in one call.
--
-- ARGV[3..]  pairs: id [string], token [string]
-- Keys touched, per id: P.."m:"..id [hash] HMGET t q, DEL; P.."b" [hash] HDEL id;
-- P.."l:"..Q [zset] ZREM id.
-- Returns a list of 1 (deleted) or 0 (stale token), in the order given.
local out = {}
for i = 3, #ARGV, 2 do
  out[#out + 1] = ack(ARGV[i], ARGV[i + 1])
end
return out
