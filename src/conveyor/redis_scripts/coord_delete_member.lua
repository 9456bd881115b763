-- delete_member: remove one member of a group; 1 when it was there and live, else 0.
-- ARGV[3] group; ARGV[4] member.
-- Keys touched: P.."c:m:"..group [hash] HGET, HDEL.
local key = P .. 'c:m:' .. ARGV[3]
local live_before = live_value(redis.call('HGET', key, ARGV[4]), NOW)
redis.call('HDEL', key, ARGV[4])
if live_before then
  return 1
end
return 0
