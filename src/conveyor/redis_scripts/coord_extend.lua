-- extend: push every live slot of these holders to now + ttl (the heartbeat).
-- ARGV[3] ttl [seconds]; ARGV[4..] holders.
-- Keys touched: P.."c:held:"..holder [set] SMEMBERS, SREM, PEXPIRE; P.."c:slot:"..key
-- [zset] ZSCORE, ZADD XX, PEXPIRE.
local seconds = tonumber(ARGV[3])
local deadline = exact(NOW + seconds)
for i = 4, #ARGV do
  local holder = ARGV[i]
  local held = P .. 'c:held:' .. holder
  for _, name in ipairs(redis.call('SMEMBERS', held)) do
    local key = P .. 'c:slot:' .. name
    local until_ = redis.call('ZSCORE', key, holder)
    if until_ and tonumber(until_) > NOW then
      redis.call('ZADD', key, 'XX', deadline, holder)
      keep_slots(key)
    else
      redis.call('SREM', held, name)
    end
  end
  if redis.call('EXISTS', held) == 1 then
    redis.call('PEXPIRE', held, ttl_ms(seconds))
  end
end
return 1
