-- set_fenced_many: several fenced sets in one call (a finished task's state and the next
-- task's STARTED), each with the rules of backend_set.lua.
--
-- ARGV[3]  ttl [milliseconds], for every item
-- ARGV[4]  reply ttl [milliseconds]: how long a reply list lives after its push
-- ARGV[5], ARGV[6], ARGV[7], ARGV[8] ... in fours: key [string], value [bytes], fence
--          [integer or ""], reply ["1" or ""]: "1" also hands the value to the sender
--          that may be waiting for it (its message asked for a reply)
-- One variadic EXISTS over all the items' v:, n: and r: keys comes first; when none
-- exists (quick tasks' first writes: no stored value, no waiter, no earlier reply), the
-- per-key reads below are skipped for the whole call.
-- Keys touched, for each key:
--   P.."v:"..key   [string]  EXISTS; GETRANGE (the fence); SET ... PX
--   P.."n:"..key   [set]     EXISTS; SMEMBERS, DEL: waiters to notify
--   P.."wl:"..*    [list]    RPUSH, PEXPIRE: each waiter's list
--   P.."r:"..key   [list]    EXISTS; DEL, RPUSH the value, PEXPIRE reply ttl (a written
--                            reply item only): the list holds the newest outcome alone, so a task
--                            re-sent from the dead letters replies with its own outcome,
--                            not with the failure before it that nobody popped
--   P.."expiry"    [zset]    ZADD (fake-clock mode only)
--   P.."ix:"..m [list], P.."ixm" [zset]  task records' first writes: one LPUSH for all,
--                            see indexed_flush() in backend_prelude.lua
-- Returns a list with 1 for each item written and 0 for each refused.
local ttl = tonumber(ARGV[3])
local reply_ttl = tonumber(ARGV[4])
local written = {}
-- Nothing exists yet (a quick task's outcome): no fence to read, no waiter, no old reply.
local fresh = existing({'v:', 'n:', 'r:'}, 5, 4) == 0
local values, unwatched, replies = not fresh, fresh, not fresh
local seen = {} -- a key written earlier in this call exists now, whatever EXISTS said
for i = 5, #ARGV, 4 do
  local name = ARGV[i]
  local key = P .. 'v:' .. name
  local fence = ARGV[i + 2]
  local again = seen[name]
  seen[name] = true
  local stored = nil
  if values or again then
    stored = fence_of(key)
  end
  if fence ~= '' and stored and stored ~= '' and tonumber(stored) > tonumber(fence) then
    written[#written + 1] = 0
  else
    if fence == '' then
      fence = stored or ''
    end
    store(name, key, ARGV[i + 1], ttl, fence, unwatched, stored == nil)
    if ARGV[i + 3] == '1' then
      local list = P .. 'r:' .. name
      if replies or again then
        redis.call('DEL', list)
      end
      redis.call('RPUSH', list, ARGV[i + 1])
      redis.call('PEXPIRE', list, reply_ttl)
    end
    written[#written + 1] = 1
  end
end
indexed_flush()
return written
