-- recover_expired: put messages whose lease passed back in their queues (at their old place)
-- and drop their tokens, so a late ack/nack/extend with the old token is refused.
--
-- ARGV[3]  limit [integer]  at most this many per queue per call
-- Keys touched:
--   P.."queues"   [set]   SMEMBERS: every queue Q
--   P.."l:"..Q    [zset]  ZRANGEBYSCORE -inf now LIMIT 0 limit; ZREM
--   P.."t"        [hash]  HMGET the expired ids; HSET each: its state without the token
--                         (and with a ready score when it had none)
--   P.."m:"..id   [hash]  HMGET s p n, DEL: only for an expired id with no state in P.."t",
--                         whose lease an earlier build's worker took (its state moves over)
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
    local values = chunked('HMGET', STATES, expired)
    for k, id in ipairs(expired) do
      local t, n, priority, score, q
      if values[k] then
        t, n, priority, score, q = parse(values[k])
      else -- a lease an earlier build's worker took: its state is P.."m:"..id
        local key = P .. 'm:' .. id
        local fields = redis.call('HMGET', key, 's', 'p', 'n')
        if fields[2] then
          n, priority, score, q = tonumber(fields[3]) or 1, fields[2], fields[1] or '', queue
          redis.call('DEL', key)
        end
      end
      if priority then
        if score == '' then
          score = exact(ready_score(priority, redis.call('INCR', P .. 'seq')))
        else
          score = score_text(score, priority)
        end
        redis.call('HSET', STATES, id, state('', n, priority, score, q))
        redis.call('ZADD', qkey, score, id)
        total = total + 1
      end
      redis.call('ZREM', lkey, id)
    end
    wake(queue)
  end
end
return {total, more}
