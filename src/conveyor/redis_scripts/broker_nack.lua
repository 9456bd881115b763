-- nack: give a reserved message back, to its queue now or to the delayed store, fenced by
-- the token. A message given back now keeps its original place (its stored ready score).
-- A nack is not a delivery: the count goes back down, so the next reservation has the
-- same delivery count as this one.
--
-- ARGV[3]  id [string]
-- ARGV[4]  token [string]
-- ARGV[5]  delay [seconds or ""]   "" or <= 0: ready now; else eta = now + delay
-- Keys touched:
--   P.."m:"..id  [hash]  HMGET t q s p; HDEL t; HINCRBY n -1; HSET s (when it had no score)
--   P.."l:"..Q   [zset]  ZREM id
--   P.."q:"..Q   [zset]  ZADD id (ready now)
--   P.."d:"..Q   [zset]  ZADD id with score eta (delayed)
--   P.."seq"     [string] INCR, only for a message that has no ready score yet
--   P.."w:"..Q   [list]  a wake token
-- Returns 1 when given back, 0 (nothing changed) when the token is stale.
local id, token, delay = ARGV[3], ARGV[4], ARGV[5]
local key = P .. 'm:' .. id
local fields = redis.call('HMGET', key, 't', 'q', 's', 'p')
if fields[1] ~= token then
  return 0
end
local queue = fields[2]
redis.call('HDEL', key, 't')
redis.call('HINCRBY', key, 'n', -1)
redis.call('ZREM', P .. 'l:' .. queue, id)
if delay ~= '' and tonumber(delay) > 0 then
  redis.call('ZADD', P .. 'd:' .. queue, exact(NOW + tonumber(delay)), id)
else
  local score = fields[3]
  if not score then
    score = ready_score(fields[4], redis.call('INCR', P .. 'seq'))
    redis.call('HSET', key, 's', score)
  end
  redis.call('ZADD', P .. 'q:' .. queue, score, id)
end
wake(queue)
return 1
