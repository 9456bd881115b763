-- members: the live members of a group and their values; expired ones are removed.
-- ARGV[3] group.  Reply: a flat list member, value, member, value...
-- Keys touched: P.."c:m:"..group [hash] HGETALL, HDEL.
local key = P .. 'c:m:' .. ARGV[3]
local all = redis.call('HGETALL', key)
local out = {}
for i = 1, #all, 2 do
  local value = live_value(all[i + 1], NOW)
  if value then
    out[#out + 1] = all[i]
    out[#out + 1] = value
  else
    redis.call('HDEL', key, all[i])
  end
end
return out
