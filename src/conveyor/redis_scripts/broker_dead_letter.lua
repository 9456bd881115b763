-- dead_letter: move a reserved message to the dead letters with a reason, fenced by token.
--
-- ARGV[3]  id [string]
-- ARGV[4]  token [string]
-- ARGV[5]  reason [string]
-- Keys touched:
--   P.."t"        [hash]  HGET id (its state), HDEL id
--   P.."b"        [hash]  HGET id (the body), HDEL id
--   P.."l:"..Q    [zset]  ZREM id
--   P.."dl:"..id  [hash]  DEL, then HSET q p b r f (failed_at = now), and e (re-sends) if any
--   P.."dead"     [zset]  ZADD id with score now
-- Returns 1 when moved, 0 (nothing changed) when the token is stale.
local id, token = ARGV[3], ARGV[4]
local n, priority, _, queue = leased(id, token)
if not n then
  return 0
end
local body = body_of(id) or ''
redis.call('HDEL', STATES, id)
redis.call('HDEL', P .. 'b', id)
redis.call('ZREM', P .. 'l:' .. queue, id)
local dead = P .. 'dl:' .. id
redis.call('DEL', dead)
redis.call('HSET', dead, 'q', queue, 'p', priority, 'b', body, 'r', ARGV[5], 'f', NOWS)
local resends = math.floor((n or 0) / RESENT)
if resends > 0 then
  redis.call('HSET', dead, 'e', resends)
end
redis.call('ZADD', P .. 'dead', NOWS, id)
return 1
