-- recover_expired: put messages whose lease passed back in their queues (at their old place)
-- and drop their tokens, so a late ack/nack/extend with the old token is refused.
--
-- ARGV[3]  limit [integer]  at most this many per queue per call
-- Keys touched:
--   P.."queues"   [set]   SMEMBERS: every queue Q
--   P.."l:"..Q    [zset]  ZRANGEBYSCORE -inf now LIMIT 0 limit; ZREM
--   P.."m:"..id   [hash]  HMGET s p; HDEL t; HSET s (only when it had no score)
--   P.."q:"..Q    [zset]  ZADD id
--   P.."seq"      [string] INCR, only for a message that has no ready score yet
--   P.."w:"..Q    [list]  a wake token when anything came back
-- Returns {count recovered, 1 when some queue had more than limit expired (call again)}.
local limit = tonumber(ARGV[3])
local total, more = 0, 0
for _, queue in ipairs(redis.call('SMEMBERS', P .. 'queues')) do
  local lkey = P .. 'l:' .. queue
  local expired = redis.call('ZRANGEBYSCORE', lkey, '-inf', NOWS, 'LIMIT', 0, limit)
  if #expired > 0 then
    if #expired >= limit then
      more = 1
    end
    local qkey = P .. 'q:' .. queue
    for _, id in ipairs(expired) do
      local key = P .. 'm:' .. id
      local fields = redis.call('HMGET', key, 's', 'p')
      if fields[2] then
        local score = fields[1]
        if not score then
          score = ready_score(fields[2], redis.call('INCR', P .. 'seq'))
          redis.call('HSET', key, 's', score)
        end
        redis.call('HDEL', key, 't')
        redis.call('ZADD', qkey, score, id)
        total = total + 1
      end
      redis.call('ZREM', lkey, id)
    end
    wake(queue)
  end
end
return {total, more}
