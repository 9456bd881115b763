-- get_many: the live values of keys, nil for absent or expired ones, in order.
-- ARGV[3..]  keys.   Keys touched (read only): P.."c:k:"..key [string] GET.
local out = {}
for i = 3, #ARGV do
  out[#out + 1] = live(P .. 'c:k:' .. ARGV[i]) or false
end
return out
