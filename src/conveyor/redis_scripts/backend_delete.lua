-- delete: delete values and sets, and any reply waiting for the value's sender.
--
-- ARGV[3..]  keys [string]
-- Keys touched, per key: P.."v:"..key [string], P.."s:"..key [set] and P.."r:"..key [list,
-- the reply list of backend_set_fenced_many.lua]: DEL.
-- Returns the count of keys under which a value or a set existed.
local count = 0
for i = 3, #ARGV do
  count = count + math.min(1, redis.call('DEL', P .. 'v:' .. ARGV[i], P .. 's:' .. ARGV[i]))
  redis.call('DEL', P .. 'r:' .. ARGV[i])
end
return count
