-- stats: ready, delayed and reserved counts of every queue that holds anything.
--
-- Keys touched (read only):
--   P.."queues"   [set]   SMEMBERS: every queue Q
--   P.."q:"..Q, P.."d:"..Q, P.."l:"..Q   [zset]  ZCARD (and ZSCORE of KEEPER in P.."l:"..Q,
--                                             which is not counted)
--   P.."p0:"..Q   [list]  LLEN (ready, with P.."q:"..Q)
-- Returns a flat list: queue, ready, delayed, reserved, queue, ...
local out = {}
for _, queue in ipairs(redis.call('SMEMBERS', P .. 'queues')) do
  local ready = redis.call('ZCARD', P .. 'q:' .. queue) + redis.call('LLEN', list_key(queue))
  local delayed = redis.call('ZCARD', P .. 'd:' .. queue)
  local lkey = P .. 'l:' .. queue
  local reserved = redis.call('ZCARD', lkey)
  if reserved > 0 and redis.call('ZSCORE', lkey, KEEPER) then
    reserved = reserved - 1
  end
  if ready + delayed + reserved > 0 then
    out[#out + 1] = queue
    out[#out + 1] = ready
    out[#out + 1] = delayed
    out[#out + 1] = reserved
  end
end
return out
