-- set: store a value with a TTL; with a fence, refuse when the stored fence is higher.
--
-- ARGV[3]  key [string]      the caller's key (stored under P.."v:"..key)
-- ARGV[4]  value [bytes]
-- ARGV[5]  ttl [milliseconds]
-- ARGV[6]  fence [integer or ""]   "": unfenced, always written, keeps the stored fence
-- Keys touched:
--   P.."v:"..key   [string]  GETRANGE (the fence), SET ... PX
--   P.."n:"..key   [set]     SMEMBERS, DEL: waiters to notify
--   P.."wl:"..*    [list]    RPUSH, PEXPIRE: each waiter's list
--   P.."expiry"    [zset]    ZADD (fake-clock mode only)
--   P.."ix:"..m, P.."ixm"    a task record's first write: see indexed_flush()
-- Returns 1 when written, 0 when refused (nothing changed, TTL included).
local name = ARGV[3]
local key = P .. 'v:' .. name
local fence = ARGV[6]
local stored = fence_of(key)
if fence ~= '' and stored and stored ~= '' and tonumber(stored) > tonumber(fence) then
  return 0
end
if fence == '' then
  fence = stored or ''
end
store(name, key, ARGV[4], tonumber(ARGV[5]), fence, false, stored == nil)
indexed_flush()
return 1
