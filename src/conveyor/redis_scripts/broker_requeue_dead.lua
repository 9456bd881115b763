-- requeue_dead_letters: send dead letters (the ids given, or all) back to their queues as
-- new attempts, oldest failure first: the delivery count starts again from 0 and the
-- re-send count goes up by one (both in its state's n). A dead letter whose id is live
-- again is dropped and not counted: the live copy wins.
--
-- ARGV[3]    mode [string]   "all", or "ids" followed by the ids
-- ARGV[4..]  ids (mode "ids")
-- Keys touched:
--   P.."dead"      [zset]  ZRANGE (all) or ZSCORE (ids); ZREM; DEL when emptied
--   P.."dl:"..id   [hash]  HMGET q p b e; DEL
--   P.."b"         [hash]  HSETNX id (priority digit .. body): unless the id is live
--   P.."t"         [hash]  HSET id: its state, n = re-sends times RESENT, no token or score
--   P.."m:"..id    [hash]  DEL (an earlier build's state)
--   P.."p0:"..Q    [list]  RPUSH (priority 0), or P.."seq" [string] INCRBY and P.."q:"..Q
--                          [zset] ZADD (priority 1-9): a new attempt is the newest
--   P.."queues"    [set]   SADD
--   P.."w:"..Q     [list]  a wake token
-- Returns the count sent back.
local dead = P .. 'dead'
local chosen = {}
if ARGV[3] == 'all' then
  chosen = redis.call('ZRANGE', dead, 0, -1)
else
  local scored = {}
  for i = 4, #ARGV do
    local score = redis.call('ZSCORE', dead, ARGV[i])
    if score then
      scored[#scored + 1] = {tonumber(score), i, ARGV[i]}
    end
  end
  table.sort(scored, function(a, b)
    if a[1] ~= b[1] then
      return a[1] < b[1]
    end
    return a[2] < b[2]
  end)
  for _, entry in ipairs(scored) do
    chosen[#chosen + 1] = entry[3]
  end
end
local sent = 0
for _, id in ipairs(chosen) do
  local dkey = P .. 'dl:' .. id
  local fields = redis.call('HMGET', dkey, 'q', 'p', 'b', 'e')
  redis.call('DEL', dkey)
  redis.call('ZREM', dead, id)
  if fields[1] and redis.call('HSETNX', P .. 'b', id, digit(fields[2]) .. fields[3]) == 1 then
    local queue = fields[1]
    redis.call('DEL', P .. 'm:' .. id)
    local resent = ((tonumber(fields[4]) or 0) + 1) * RESENT
    redis.call('HSET', STATES, id, state('', resent, digit(fields[2]), '', queue))
    make_ready(queue, {id}, {digit(fields[2])})
    redis.call('SADD', P .. 'queues', queue)
    wake(queue)
    sent = sent + 1
  end
end
return sent
