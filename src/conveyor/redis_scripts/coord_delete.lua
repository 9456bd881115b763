-- delete: delete a key, only while it holds the value given (when one is given).
-- ARGV[3] key; ARGV[4] "1" when a value is given, else "0"; ARGV[5] value.
-- Keys touched: P.."c:k:"..key [string] GET, DEL.
-- Returns 1 when a live value was deleted, else 0.
local key = P .. 'c:k:' .. ARGV[3]
local existing = live(key)
if not existing or (ARGV[4] == '1' and existing ~= ARGV[5]) then
  return 0
end
redis.call('DEL', key)
return 1
