-- purge: delete the ready and delayed messages of one queue, or of every queue. Reserved
-- messages are left to their holders.
--
-- ARGV[3]  queue [string]   "" for every queue
-- Keys touched:
--   P.."queues"   [set]   SMEMBERS (every queue)
--   P.."q:"..Q    [zset]  ZRANGE 0 -1, DEL
--   P.."p0:"..Q   [list]  LRANGE 0 -1, DEL
--   P.."d:"..Q    [zset]  ZRANGE 0 -1, DEL
--   P.."w:"..Q    [list]  DEL
--   P.."b"        [hash]  HDEL every id in those sets
--   P.."t"        [hash]  HDEL every id in those sets (if it was delivered before)
--   P.."m:"..id   [hash]  DEL for every id in those sets (an earlier build's state)
-- Returns the count of messages deleted.
local queues
if ARGV[3] == '' then
  queues = redis.call('SMEMBERS', P .. 'queues')
else
  queues = {ARGV[3]}
end
local deleted = 0
for _, queue in ipairs(queues) do
  local sets = {P .. 'q:' .. queue, P .. 'd:' .. queue, list_key(queue)}
  for k, set in ipairs(sets) do
    local ids
    if k <= 2 then
      ids = redis.call('ZRANGE', set, 0, -1)
    else
      ids = redis.call('LRANGE', set, 0, -1)
    end
    for _, id in ipairs(ids) do
      deleted = deleted + redis.call('HDEL', P .. 'b', id)
      redis.call('HDEL', STATES, id)
      redis.call('DEL', P .. 'm:' .. id)
    end
    redis.call('DEL', set)
  end
  redis.call('DEL', P .. 'w:' .. queue)
end
return deleted
