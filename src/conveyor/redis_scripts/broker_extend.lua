-- extend: push leases to now + lease, each only while its token is the current one.
--
-- ARGV[3]    lease [seconds]
-- ARGV[4..]  pairs: id [string], token [string]
-- Keys touched, per id:
--   P.."m:"..id  [hash]  HMGET t q
--   P.."l:"..Q   [zset]  ZADD XX id with score now + lease, when the token matches
-- Returns a list of 1 (extended) or 0 (stale token), in the order given.
local deadline = exact(NOW + tonumber(ARGV[3]))
local out = {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local fields = redis.call('HMGET', P .. 'm:' .. id, 't', 'q')
  if fields[1] == ARGV[i + 1] then
    redis.call('ZADD', P .. 'l:' .. fields[2], 'XX', deadline, id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
