-- ack_many: broker_ack.lua for several deliveries in one call.
--
-- ARGV[3..]  pairs: id [string], token [string]
-- Keys touched, per id: P.."m:"..id [hash] HMGET t q, DEL; P.."b" [hash] HDEL id;
-- P.."l:"..Q [zset] ZREM id.
-- (ack_all() in the prelude: the deletes are variadic, one call for all the ids.)
-- Returns a list of 1 (deleted) or 0 (stale token), in the order given; an id given twice
-- is deleted once (the second reads 0).
local flags = ack_all(3)
return flags
