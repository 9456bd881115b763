-- dead_letter: move a reserved message to the dead letters with a reason, fenced by token.
--
-- ARGV[3]  id [string]
-- ARGV[4]  token [string]
-- ARGV[5]  reason [string]
-- Keys touched:
--   P.."m:"..id   [hash]  HMGET t q p; DEL
--   P.."b"        [hash]  HGET id (the body), HDEL id
--   P.."l:"..Q    [zset]  ZREM id
--   P.."dl:"..id  [hash]  DEL, then HSET q p b r f (failed_at = now)
--   P.."dead"     [zset]  ZADD id with score now
-- Returns 1 when moved, 0 (nothing changed) when the token is stale.
local id, token = ARGV[3], ARGV[4]
local key = P .. 'm:' .. id
local fields = redis.call('HMGET', key, 't', 'q', 'p')
if fields[1] ~= token then
  return 0
end
local body = body_of(id) or ''
redis.call('DEL', key)
redis.call('HDEL', P .. 'b', id)
redis.call('ZREM', P .. 'l:' .. fields[2], id)
local dead = P .. 'dl:' .. id
redis.call('DEL', dead)
redis.call('HSET', dead, 'q', fields[2], 'p', fields[3], 'b', body, 'r', ARGV[5], 'f', NOWS)
redis.call('ZADD', P .. 'dead', NOWS, id)
return 1
