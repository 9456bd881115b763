-- put_if_absent: store a value unless the key holds a live one.
-- ARGV[3] key; ARGV[4] value; ARGV[5] ttl [seconds].
-- Keys touched: P.."c:k:"..key [string] GET, SET ... PX.
-- Returns nil when stored, else the live value found.
local key = P .. 'c:k:' .. ARGV[3]
local existing = live(key)
if existing then
  return existing
end
put(key, ARGV[4], tonumber(ARGV[5]))
return false
