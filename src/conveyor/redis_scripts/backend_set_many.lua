-- set_many: store many unfenced values with one TTL; each keeps its stored fence.
--
-- ARGV[3]    ttl [milliseconds]
-- ARGV[4..]  pairs: key [string], value [bytes]
-- Keys touched, per key: as backend_set.lua (P.."v:"..key, P.."n:"..key, waiter lists,
-- P.."expiry").
-- Returns the count written.
local ms = tonumber(ARGV[3])
local written = 0
for i = 4, #ARGV, 2 do
  local name = ARGV[i]
  local key = P .. 'v:' .. name
  store(name, key, ARGV[i + 1], ms, fence_of(key) or '')
  written = written + 1
end
return written
