-- set_fenced_many: several fenced sets in one call (a finished task's state and the next
-- task's STARTED), each with the rules of backend_set.lua.
--
-- ARGV[3]  ttl [milliseconds], for every item
-- ARGV[4]  reply ttl [milliseconds]: how long a reply list lives after its push
-- ARGV[5], ARGV[6], ARGV[7], ARGV[8] ... in fours: key [string], value [bytes], fence
--          [integer or ""], reply ["", "1" or an address]: "1" also hands the value to the
--          sender that may be waiting for it (its message asked for a reply) on the key's
--          own reply list; an address (Message.reply_to: the sending thread's waiter list
--          id) hands it to that list instead, as "<#key>:<key><value>", as notify() does
-- One item takes a straight path with the same effects (no bookkeeping tables).
-- One variadic EXISTS over all the items' n: keys comes first (unless P.."waiting" says
-- nobody waits on any key); when none exists, notify() is skipped for the whole call.
-- Each value is first written with SET ... NX: a key that did not exist (a quick task's
-- outcome) needs no fence read; only when it exists is its fence read and compared.
-- Keys touched, for each key:
--   P.."v:"..key   [string]  SET ... PX NX; when that found the key: GETRANGE (the fence),
--                            SET ... PX
--   P.."waiting"   [string]  EXISTS, once a call
--   P.."n:"..key   [set]     EXISTS (when P.."waiting" exists); SMEMBERS, DEL: waiters
--   P.."wl:"..*    [list]    RPUSH, PEXPIRE: each waiter's list
--   P.."r:"..key   [list]    RPUSH the value, PEXPIRE reply ttl (a written reply item only),
--                            and LTRIM to the newest when the push found older ones: the
--                            list holds the newest outcome alone, so a task re-sent from
--                            the dead letters replies with its own outcome, not with the
--                            failure before it that nobody popped
--   P.."wl:"..address [list] RPUSH the items for that address, one call for them all,
--                            then LTRIM to the newest KEPT when longer, and PEXPIRE reply ttl
--   P.."expiry"    [zset]    ZADD (fake-clock mode only)
--   P.."ix:"..m [list], P.."ixm" [zset]  task records' first writes: one LPUSH for all,
--                            see indexed_flush() in backend_prelude.lua
-- Returns a list with 1 for each item written and 0 for each refused.
local ttl = tonumber(ARGV[3])
local reply_ttl = ARGV[4]

-- One item (a lone task's outcome, a round trip's): the loop below without its bookkeeping
-- tables, which cost a lone write more than its commands do (each is garbage to collect).
if #ARGV == 8 then
  local name, value, reply = ARGV[5], ARGV[6], ARGV[8]
  local unwatched = not anyone_waiting() or redis.call('EXISTS', P .. 'n:' .. name) == 0
  if not write_fenced(name, P .. 'v:' .. name, value, ttl, ARGV[7], unwatched, true) then
    return {0}
  end
  if reply == '1' then
    reply_own(name, value, reply_ttl)
  elseif reply ~= '' then
    reply_to(reply, {head(name) .. name .. value}, reply_ttl)
  end
  indexed_flush()
  return {1}
end

local written = {}
local addressed, addresses = {}, {}
local unwatched = not anyone_waiting() or existing({'n:'}, 5, 4) == 0
local seen = {} -- a key written earlier in this call exists now: its fence is read
for i = 5, #ARGV, 4 do
  local name, value = ARGV[i], ARGV[i + 1]
  local fresh = not seen[name]
  seen[name] = true
  if write_fenced(name, P .. 'v:' .. name, value, ttl, ARGV[i + 2], unwatched, fresh) then
    local reply = ARGV[i + 3]
    if reply == '1' then
      reply_own(name, value, reply_ttl)
    elseif reply ~= '' then
      local items = addressed[reply]
      if not items then
        items = {}
        addressed[reply] = items
        addresses[#addresses + 1] = reply
      end
      items[#items + 1] = (HEADS[#name] or head(name)) .. name .. value -- no call if known
    end
    written[#written + 1] = 1
  else
    written[#written + 1] = 0
  end
end
for _, address in ipairs(addresses) do
  reply_to(address, addressed[address], reply_ttl)
end
indexed_flush()
return written
