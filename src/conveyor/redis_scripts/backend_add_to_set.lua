-- add_to_set: add a member to a set and refresh the set's TTL.
--
-- ARGV[3]  key [string]
-- ARGV[4]  member [string]
-- ARGV[5]  ttl [milliseconds]
-- Keys touched: P.."s:"..key [set] SADD, PEXPIRE, SCARD; P.."expiry" (fake-clock mode).
-- Returns the set's size afterwards.
local key = P .. 's:' .. ARGV[3]
local ms = tonumber(ARGV[5])
redis.call('SADD', key, ARGV[4])
local size = redis.call('SCARD', key)
if ms <= 0 then
  redis.call('DEL', key)
else
  redis.call('PEXPIRE', key, px(ms))
  noted(key, ms)
end
return size
