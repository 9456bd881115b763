-- next_due: for a worker about to sleep, the queues it may wait on and the earliest eta
-- among their delayed messages (it must wake by then to move them).
--
-- ARGV[3..]  queue names; none: every known queue
-- Keys touched (read only):
--   P.."queues"   [set]   SMEMBERS, when no queue is given
--   P.."d:"..Q    [zset]  ZRANGE 0 0 WITHSCORES
-- Returns {earliest eta or "", now, queue, queue, ...}.
local queues = {}
for i = 3, #ARGV do
  queues[#queues + 1] = ARGV[i]
end
if #queues == 0 then
  queues = redis.call('SMEMBERS', P .. 'queues')
end
local earliest = nil
for _, queue in ipairs(queues) do
  local first = redis.call('ZRANGE', P .. 'd:' .. queue, 0, 0, 'WITHSCORES')
  if #first > 0 then
    local eta = tonumber(first[2])
    if earliest == nil or eta < earliest then
      earliest = eta
    end
  end
end
local out = {earliest and exact(earliest) or '', NOWS}
for _, queue in ipairs(queues) do
  out[#out + 1] = queue
end
return out
