-- nack: give a reserved message back, to its queue now or to the delayed store, fenced by
-- the token. A message given back now keeps its original place (its stored ready score).
-- A nack is not a delivery: the count goes back down, so the next reservation has the
-- same delivery count as this one.
--
-- ARGV[3]  id [string]
-- ARGV[4]  token [string]
-- ARGV[5]  delay [seconds or ""]   "" or <= 0: ready now; else eta = now + delay
-- Keys touched:
--   P.."t"       [hash]  HGET id; HSET id (its state without the token, n - 1, and a ready
--                        score when it had none)
--   P.."l:"..Q   [zset]  ZREM id
--   P.."q:"..Q   [zset]  ZADD id (ready now)
--   P.."d:"..Q   [zset]  ZADD id with score eta (delayed)
--   P.."seq"     [string] INCR, only for a message that has no ready score yet
--   P.."w:"..Q   [list]  a wake token
-- Returns 1 when given back, 0 (nothing changed) when the token is stale.
local id, token, delay = ARGV[3], ARGV[4], ARGV[5]
local n, priority, score, queue = leased(id, token)
if not n then
  return 0
end
redis.call('ZREM', P .. 'l:' .. queue, id)
if delay ~= '' and tonumber(delay) > 0 then
  redis.call('ZADD', P .. 'd:' .. queue, exact(NOW + tonumber(delay)), id)
else
  if score == '' then
    score = exact(ready_score(priority, redis.call('INCR', P .. 'seq')))
  else
    score = score_text(score, priority)
  end
  redis.call('ZADD', P .. 'q:' .. queue, score, id)
end
redis.call('HSET', STATES, id, state('', n - 1, priority, score, queue))
wake(queue)
return 1
