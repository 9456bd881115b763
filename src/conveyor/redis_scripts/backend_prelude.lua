-- Prepended to every backend_*.lua script by conveyor.lua_script.
--
-- Common ARGV of every backend script:
--   ARGV[1]  string  key prefix, "conveyor:" by default
--   ARGV[2]  string  "" in production: TTLs are Redis's own (PX/PEXPIRE). The contract
--                    tests pass a fake clock's time in milliseconds instead; then every
--                    TTL is also noted in P.."expiry" and backend_sweep.lua deletes what
--                    the fake clock says has expired (the real TTL is kept an hour longer
--                    as a backstop, so nothing written by a test lives for ever).
--
-- Key layout of the result backend (P = the prefix; types in brackets):
--   P.."v:"..key    [string] "<fence>:<value>": the fence of the last fenced write (may be
--                            empty), a colon, then the value; always with a TTL
--   P.."s:"..key    [set]    members of a set; always with a TTL
--   P.."n:"..key    [set]    names of waiter lists of clients blocked on this key (short TTL)
--   P.."waiting"    [string] exists while any P.."n:" set may (its TTL is the longest a
--                            registration was given): while it does not, a batch of writes
--                            looks for no waiters (backend_set_fenced_many.lua)
--   P.."wl:"..uuid  [list]   one client thread's waiter list; each element is
--                            "<#key>:<key><value>", pushed when the key is written
--   P.."r:"..key    [list]   the key's reply: its value, pushed by a write that carries
--                            one (backend_set_fenced_many.lua), for the process that sent
--                            the task and may be waiting for it; short TTL
--   P.."expiry"     [zset]   fake-clock mode only: Redis key -> expiry (ms)
--   P.."ix:"..m     [list]   the task records (keys starting with TASKS) first written in
--                            minute m (Unix ms / 60000), newest first (LPUSH); it expires
--                            a minute after the TTL of the newest record listed in it
--   P.."ixm"        [zset]   the minutes m that have such a list (score m): what
--                            backend_list.lua walks, newest first
-- The call's own state, set by begin() before the script's body runs (conveyor.lua_script
-- calls it first): a prelude's top level runs once when Redis loads it as a function
-- library, so nothing there may depend on the call.
local P, CLOCK
local BACKSTOP = 3600000

-- The PX to give Redis for a TTL of ms milliseconds, as a string (Redis formats a number
-- argument with a slow %.17g; a batch's items share one TTL, so it is made once).
local px_ms, px_text = nil, nil
local function px(ms)
  if ms ~= px_ms then
    px_ms = ms
    px_text = string.format('%d', CLOCK and ms + BACKSTOP or ms)
  end
  return px_text
end

-- In fake-clock mode, remember when the key expires by that clock.
local function noted(key, ms)
  if CLOCK then
    redis.call('ZADD', P .. 'expiry', CLOCK + ms, key)
  end
end

-- Task records (conveyor.keys.TASK_PREFIX) are listed in the minute of their first write:
-- store() notes each (a key that exists already is not listed again), and the script
-- pushes them all with one LPUSH before it returns (indexed_flush()). Only the push that
-- creates the minute's list adds the minute to P.."ixm" and trims it; every push renews
-- the list's TTL.
local TASKS = 'conveyor-task-'
local pending, pending_ms

local function begin()
  P = ARGV[1]
  CLOCK = tonumber(ARGV[2])
  px_ms, px_text = nil, nil
  pending, pending_ms = {}, 0
end

-- `absent`: the caller knows the key does not exist yet (no EXISTS needed).
local function indexed(name, key, ms, absent)
  if string.find(name, TASKS, 1, true) ~= 1 then
    return
  end
  if not absent and redis.call('EXISTS', key) == 1 then
    return
  end
  pending[#pending + 1] = name
  if ms > pending_ms then
    pending_ms = ms
  end
end

-- Push the task records store() noted to their minute's list (every script that stores
-- calls it last). Keys: P.."ix:"..m [list] LPUSH, PEXPIRE; P.."ixm" [zset] ZADD,
-- ZREMRANGEBYSCORE (when the push created the list).
local function indexed_flush()
  if #pending == 0 then
    return
  end
  local now = CLOCK
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  local m = math.floor(now / 60000)
  local minute = string.format('%d', m) -- '..' would format it with a %.14g sprintf
  local list = P .. 'ix:' .. minute
  local length = 0
  for from = 1, #pending, 1000 do
    length = redis.call('LPUSH', list, unpack(pending, from, math.min(from + 999, #pending)))
  end
  if length == #pending then
    redis.call('ZADD', P .. 'ixm', minute, minute)
    redis.call(
      'ZREMRANGEBYSCORE', P .. 'ixm', '-inf', '(' .. (m - math.ceil(pending_ms / 60000) - 1)
    )
  end
  redis.call('PEXPIRE', list, px(pending_ms + 60000))
  noted(list, pending_ms + 60000)
  pending, pending_ms = {}, 0
end

-- "<#name>:", the head of a waiter list's item for the key name (see notify()): kept by
-- length across calls (a function library's table lives with it), since keys are mostly
-- of one length and a number's concatenation costs Lua a sprintf.
local HEADS = {}
local function head(name)
  local known = HEADS[#name]
  if not known then
    known = string.format('%d:', #name)
    if #name <= 1000 then
      HEADS[#name] = known
    end
  end
  return known
end

-- The fence of a stored "<fence>:<value>" string: nil when absent, "" when it has none.
local function fence_of(key)
  local head = redis.call('GETRANGE', key, 0, 31)
  if head == '' then
    return nil
  end
  local colon = string.find(head, ':', 1, true)
  if not colon then
    return ''
  end
  return string.sub(head, 1, colon - 1)
end

-- A client registered for a key for ms milliseconds: P.."waiting" lives at least as long.
local function registered(ms)
  local flag = P .. 'waiting'
  if redis.call('PTTL', flag) < ms then
    redis.call('SET', flag, '1', 'PX', ms)
  end
end

-- Whether a client may be registered for any key (see registered()).
local function anyone_waiting()
  return redis.call('EXISTS', P .. 'waiting') == 1
end

-- Hand a new value to every client waiting on the key (see backend_watch.lua).
local function notify(name, value)
  local waiting = P .. 'n:' .. name
  local lists = redis.call('SMEMBERS', waiting)
  if #lists > 0 then
    local message = head(name) .. name .. value
    for _, list in ipairs(lists) do
      redis.call('RPUSH', list, message)
      redis.call('PEXPIRE', list, 60000)
    end
    redis.call('DEL', waiting)
  end
end

-- Store a value, keeping the fence given (or the one stored when fence is nil).
-- `unwatched` true: the caller knows nobody waits on the key (notify() is skipped);
-- `absent` true: it knows the key does not exist. Call indexed_flush() after the last.
local function store(name, key, value, ms, fence, unwatched, absent)
  if ms <= 0 then
    redis.call('DEL', key)
    return
  end
  indexed(name, key, ms, absent)
  redis.call('SET', key, fence .. ':' .. value, 'PX', px(ms))
  noted(key, ms)
  if not unwatched then
    notify(name, value)
  end
end

-- store() for a key that is likely absent (a quick task's outcome): SET ... NX, so no read
-- comes first. Returns false, having changed nothing, when the key exists.
local function create(name, key, value, ms, fence, unwatched)
  if not redis.call('SET', key, fence .. ':' .. value, 'PX', px(ms), 'NX') then
    return false
  end
  indexed(name, key, ms, true)
  noted(key, ms)
  if not unwatched then
    notify(name, value)
  end
  return true
end

-- A fenced write of one item (backend_set_fenced_many.lua's rules): SET ... NX first when
-- the key may be new (`fresh`), else, or when it existed, its fence read and compared.
-- Whether the value was written (false: the stored fence is newer).
local function write_fenced(name, key, value, ms, fence, unwatched, fresh)
  if fresh and ms > 0 and create(name, key, value, ms, fence, unwatched) then
    return true
  end
  local stored = fence_of(key)
  if fence ~= '' and stored and stored ~= '' and tonumber(stored) > tonumber(fence) then
    return false
  end
  if fence == '' then
    fence = stored or ''
  end
  store(name, key, value, ms, fence, unwatched, stored == nil)
  return true
end

-- A written value for its sender on the key's own reply list, which then holds it alone
-- (see backend_set_fenced_many.lua), for reply_ms milliseconds.
local function reply_own(name, value, reply_ms)
  local list = P .. 'r:' .. name
  if redis.call('RPUSH', list, value) > 1 then
    redis.call('LTRIM', list, -1, -1)
  end
  redis.call('PEXPIRE', list, reply_ms)
end

-- Replies ("<#key>:<key><value>" items) for one sender's list, which keeps the newest KEPT
-- (a sender that never waits), for reply_ms milliseconds.
local KEPT = 10000
local function reply_to(address, items, reply_ms)
  local list, length = P .. 'wl:' .. address, 0
  for from = 1, #items, 1000 do
    length = redis.call('RPUSH', list, unpack(items, from, math.min(from + 999, #items)))
  end
  if length > KEPT then
    redis.call('LTRIM', list, -KEPT, -1)
  end
  redis.call('PEXPIRE', list, reply_ms)
end

-- How many of the keys P..kind..name exist, for each kind in `kinds` and the names at
-- ARGV[from], ARGV[from + step], ...: variadic EXISTS, 1000 keys a call (Lua's unpack()
-- has a stack limit). 0 lets a batch skip every per-key read of those kinds.
local function existing(kinds, from, step)
  local keys, total = {}, 0
  for i = from, #ARGV, step do
    for _, kind in ipairs(kinds) do
      keys[#keys + 1] = P .. kind .. ARGV[i]
    end
    if #keys >= 1000 then
      total = total + redis.call('EXISTS', unpack(keys))
      keys = {}
    end
  end
  if #keys > 0 then
    total = total + redis.call('EXISTS', unpack(keys))
  end
  return total
end
