-- sweep (fake-clock mode only): delete every key whose noted expiry has passed by the fake
-- clock, as Redis would have by its own clock.
--
-- Keys touched: P.."expiry" [zset] ZRANGEBYSCORE -inf now, ZREM; each key named there: DEL.
-- Returns the count of keys deleted.
local expired = redis.call('ZRANGEBYSCORE', P .. 'expiry', '-inf', CLOCK)
local deleted = 0
for _, key in ipairs(expired) do
  deleted = deleted + redis.call('DEL', key)
  redis.call('ZREM', P .. 'expiry', key)
end
return deleted
