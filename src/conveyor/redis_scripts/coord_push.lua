-- push: append values to a list; each is dropped after ttl seconds unless taken.
-- ARGV[3] key; ARGV[4] ttl [seconds]; ARGV[5..] values.
-- Keys touched: P.."c:l:"..key [list] RPUSH, PEXPIRE (kept as long as its newest value).
local key = P .. 'c:l:' .. ARGV[3]
local seconds = tonumber(ARGV[4])
local stamp = exact(NOW + seconds) .. '|'
for i = 5, #ARGV do
  redis.call('RPUSH', key, stamp .. ARGV[i])
end
keep_at_least(key, seconds)
return #ARGV - 4
