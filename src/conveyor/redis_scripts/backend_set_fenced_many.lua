-- set_fenced_many: several fenced sets in one call (a finished task's state and the next
-- task's STARTED), each with the rules of backend_set.lua.
--
-- ARGV[3]  ttl [milliseconds], for every item
-- ARGV[4], ARGV[5], ARGV[6] ... in threes: key [string], value [bytes], fence [integer or ""]
-- Keys touched, for each key:
--   P.."v:"..key   [string]  GETRANGE (the fence), SET ... PX
--   P.."n:"..key   [set]     SMEMBERS, DEL: waiters to notify
--   P.."wl:"..*    [list]    RPUSH, PEXPIRE: each waiter's list
--   P.."expiry"    [zset]    ZADD (fake-clock mode only)
-- Returns a list with 1 for each item written and 0 for each refused.
local ttl = tonumber(ARGV[3])
local written = {}
for i = 4, #ARGV, 3 do
  local name = ARGV[i]
  local key = P .. 'v:' .. name
  local fence = ARGV[i + 2]
  local stored = fence_of(key)
  if fence ~= '' and stored and stored ~= '' and tonumber(stored) > tonumber(fence) then
    written[#written + 1] = 0
  else
    if fence == '' then
      fence = stored or ''
    end
    store(name, key, ARGV[i + 1], ttl, fence)
    written[#written + 1] = 1
  end
end
return written
