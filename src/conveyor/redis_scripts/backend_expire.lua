-- expire: reset the TTL of a value and of a set under the same key.
--
-- ARGV[3]  key [string]
-- ARGV[4]  ttl [milliseconds]
-- Keys touched: P.."v:"..key [string] and P.."s:"..key [set]: EXISTS, PEXPIRE (or DEL when
-- the TTL is not positive); P.."expiry" (fake-clock mode).
-- Returns 1 when either existed, else 0.
local ms = tonumber(ARGV[4])
local found = 0
for _, key in ipairs({P .. 'v:' .. ARGV[3], P .. 's:' .. ARGV[3]}) do
  if redis.call('EXISTS', key) == 1 then
    found = 1
    if ms <= 0 then
      redis.call('DEL', key)
    else
      redis.call('PEXPIRE', key, px(ms))
      noted(key, ms)
    end
  end
end
return found
