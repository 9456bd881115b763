-- take: every live value of a list, oldest first, and the list emptied.
-- ARGV[3] key.
-- Keys touched: P.."c:l:"..key [list] LRANGE, DEL.
local key = P .. 'c:l:' .. ARGV[3]
local all = redis.call('LRANGE', key, 0, -1)
if #all == 0 then
  return {}
end
redis.call('DEL', key)
local out = {}
for i = 1, #all do
  local value = live_value(all[i], NOW)
  if value then
    out[#out + 1] = value
  end
end
return out
