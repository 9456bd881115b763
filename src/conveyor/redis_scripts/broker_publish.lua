-- publish: store messages; an id that is live already (ready, delayed or reserved) is ignored.
--
-- ARGV[3..]  groups of five, one per message:
--              id [string], queue [string], priority [0-9], eta [unix seconds or ""], body
-- Keys touched (see the prelude for the layout):
--   P.."seq"        [string] INCRBY: sequence numbers for the ready scores
--   P.."m:"..id     [hash]   EXISTS (duplicate check), HSET b p q n (and s when ready now)
--   P.."q:"..queue  [zset]   ZADD when the eta is absent or not after now
--   P.."d:"..queue  [zset]   ZADD score eta when the eta is after now
--   P.."queues"     [set]    SADD the queue name
--   P.."w:"..queue  [list]   one wake token, so a sleeping worker re-reads (also for
--                            delayed messages: its sleep may have to end sooner)
-- Returns the count of messages stored.
local count = (#ARGV - 2) / 5
if count < 1 then
  return 0
end
local seq = redis.call('INCRBY', P .. 'seq', count) - count
local touched = {}
local stored = 0
for i = 3, #ARGV, 5 do
  local id, queue, priority, eta = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local key = P .. 'm:' .. id
  if redis.call('EXISTS', key) == 0 then
    stored = stored + 1
    if eta ~= '' and tonumber(eta) > NOW then
      redis.call('HSET', key, 'b', ARGV[i + 4], 'p', priority, 'q', queue, 'n', 0)
      redis.call('ZADD', P .. 'd:' .. queue, eta, id)
    else
      seq = seq + 1
      local score = ready_score(priority, seq)
      redis.call('HSET', key, 'b', ARGV[i + 4], 'p', priority, 'q', queue, 'n', 0, 's', score)
      redis.call('ZADD', P .. 'q:' .. queue, score, id)
    end
    if not touched[queue] then
      touched[queue] = true
      redis.call('SADD', P .. 'queues', queue)
      wake(queue)
    end
  end
end
return stored
