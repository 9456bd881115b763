-- put_many: store values for ttl seconds, replacing what was there.
-- ARGV[3] ttl [seconds]; ARGV[4..] pairs: key, value.
-- Keys touched: P.."c:k:"..key [string] SET ... PX.
local seconds = tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
  put(P .. 'c:k:' .. ARGV[i], ARGV[i + 1], seconds)
end
return #ARGV - 3
