-- incr: add to an integer counter (absent: 0) and refresh its TTL; keeps the stored fence.
--
-- ARGV[3]  key [string]
-- ARGV[4]  amount [integer]
-- ARGV[5]  ttl [milliseconds]
-- Keys touched: P.."v:"..key [string] GET, SET ... PX; P.."n:"..key and waiter lists
-- (notify); P.."expiry" (fake-clock mode); P.."ix:"..m, P.."ixm" (a task record's
-- first write: see indexed_flush()).
-- Returns the new value.
local name = ARGV[3]
local key = P .. 'v:' .. name
local current = redis.call('GET', key)
local fence, value = '', 0
if current then
  local colon = string.find(current, ':', 1, true)
  if colon then
    fence = string.sub(current, 1, colon - 1)
    value = tonumber(string.sub(current, colon + 1)) or 0
  else
    value = tonumber(current) or 0
  end
end
value = value + tonumber(ARGV[4])
store(name, key, string.format('%d', value), tonumber(ARGV[5]), fence, false, current == nil)
indexed_flush()
return value
