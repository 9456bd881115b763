-- extend: push leases to now + lease, each only while its token is the current one.
--
-- ARGV[3]    lease [seconds]
-- ARGV[4..]  pairs: id [string], token [string]
-- Keys touched, per id:
--   P.."t"       [hash]  HMGET ids (their states: token and queue), one call
--   P.."l:"..Q   [zset]  ZADD XX id with score now + lease, when the token matches
-- Returns a list of 1 (extended) or 0 (stale token), in the order given.
local deadline = exact(NOW + tonumber(ARGV[3]))
local ids = {}
for i = 4, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
end
local values = chunked('HMGET', STATES, ids)
local out = {}
for k, id in ipairs(ids) do
  local t, queue = holder(values[k])
  if t == ARGV[2 * k + 3] then
    redis.call('ZADD', P .. 'l:' .. queue, 'XX', deadline, id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
