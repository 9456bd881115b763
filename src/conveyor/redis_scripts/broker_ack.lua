-- ack: delete a finished message, only while the caller's token is the current one.
--
-- ARGV[3]  id [string]
-- ARGV[4]  token [string]   the lease token of the delivery being acknowledged
-- Keys touched:
--   P.."t"       [hash]  HGET id (its state: token and queue); HDEL id when the token matches
--   P.."b"       [hash]  HDEL id when the token matches
--   P.."l:"..Q   [zset]  ZREM id (Q is the queue stored in the message)
-- Returns 1 when deleted, 0 (and nothing changed) when the token is stale or the id unknown.
return ack(ARGV[3], ARGV[4])
