-- delete: delete values and sets.
--
-- ARGV[3..]  keys [string]
-- Keys touched, per key: P.."v:"..key [string] and P.."s:"..key [set]: DEL.
-- Returns the count of keys under which a value or a set existed.
local count = 0
for i = 3, #ARGV do
  count = count + math.min(1, redis.call('DEL', P .. 'v:' .. ARGV[i], P .. 's:' .. ARGV[i]))
end
return count
