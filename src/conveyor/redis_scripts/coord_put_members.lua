-- put_members: store members of a group with their values for ttl seconds.
-- ARGV[3] group; ARGV[4] ttl [seconds]; ARGV[5..] pairs: member, value.
-- Keys touched: P.."c:m:"..group [hash] HSET, PEXPIRE (kept as long as its longest member).
local key = P .. 'c:m:' .. ARGV[3]
local seconds = tonumber(ARGV[4])
local stamp = exact(NOW + seconds) .. '|'
for i = 5, #ARGV, 2 do
  redis.call('HSET', key, ARGV[i], stamp .. ARGV[i + 1])
end
keep_at_least(key, seconds)
return (#ARGV - 4) / 2
