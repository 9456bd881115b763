-- ack_many: broker_ack.lua for several deliveries in one call.
--
-- ARGV[3..]  runs of one reservation's deliveries of one queue: token [string], queue
--            [string], n [integer], then n ids [string] (ack_all() in the prelude)
-- Keys touched: P.."t" [hash] HMGET ids (their states), HDEL; P.."b" [hash] HDEL ids;
-- P.."l:"..Q [zset] ZREM ids, per queue Q.
-- (ack_all() in the prelude: one call per command for all the ids.)
-- Returns the verdicts as text, "1" (deleted) or "0" (stale token) per delivery in the
-- order given; an id given twice is deleted once (the second reads "0").
return ack_all(3)
