-- set_many: store many unfenced values with one TTL; each keeps its stored fence.
--
-- ARGV[3]    ttl [milliseconds]
-- ARGV[4..]  pairs: key [string], value [bytes]
-- Keys touched, per key: as backend_set.lua (P.."v:"..key, P.."n:"..key, waiter lists,
-- P.."expiry"; P.."ix:"..m, P.."ixm" for task records, see indexed_flush()).
-- Returns the count written.
local ms = tonumber(ARGV[3])
local written = 0
for i = 4, #ARGV, 2 do
  local name = ARGV[i]
  local key = P .. 'v:' .. name
  local stored = fence_of(key)
  store(name, key, ARGV[i + 1], ms, stored or '', false, stored == nil)
  written = written + 1
end
indexed_flush()
return written
