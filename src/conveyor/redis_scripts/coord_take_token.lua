-- take_token: take a token from a bucket refilled at `rate` per second up to `capacity`.
-- ARGV[3] key; ARGV[4] rate [tokens/s]; ARGV[5] capacity.
-- Keys touched: P.."c:bucket:"..key [hash] HMGET t u, HSET t u, PEXPIRE (once full again
-- the bucket is as good as absent).
-- Returns "0" when a token was taken, else the seconds until one will be there (a string:
-- Redis would truncate a Lua number to an integer).
local key = P .. 'c:bucket:' .. ARGV[3]
local rate, capacity = tonumber(ARGV[4]), tonumber(ARGV[5])
local fields = redis.call('HMGET', key, 't', 'u')
local tokens, updated = capacity, NOW
if fields[1] then
  tokens, updated = tonumber(fields[1]), tonumber(fields[2])
end
tokens = math.min(capacity, tokens + math.max(0, NOW - updated) * rate)
local wait = '0'
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = exact((1 - tokens) / rate)
end
redis.call('HSET', key, 't', exact(tokens), 'u', NOWS)
redis.call('PEXPIRE', key, ttl_ms(capacity / rate + 1))
return wait
