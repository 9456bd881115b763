-- Prepended to every backend_*.lua script by conveyor.redis_connection.
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
local P = ARGV[1]
local CLOCK = tonumber(ARGV[2])
local BACKSTOP = 3600000

-- The PX to give Redis for a TTL of ms milliseconds.
local function px(ms)
  if CLOCK then
    return ms + BACKSTOP
  end
  return ms
end

-- In fake-clock mode, remember when the key expires by that clock.
local function noted(key, ms)
  if CLOCK then
    redis.call('ZADD', P .. 'expiry', CLOCK + ms, key)
  end
end

-- Task records (conveyor.keys.TASK_PREFIX) are listed in the minute of their first write
-- (before the SET: a key that exists already is not listed again). A push is O(1); the
-- minute's list and its entry in P.."ixm" are touched once per script call.
local TASKS = 'conveyor-task-'
local minute_list = nil

local function indexed(name, key, ms)
  if string.sub(name, 1, #TASKS) ~= TASKS or redis.call('EXISTS', key) == 1 then
    return
  end
  if not minute_list then
    local now = CLOCK
    if not now then
      local t = redis.call('TIME')
      now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    local minute = math.floor(now / 60000)
    minute_list = P .. 'ix:' .. minute
    redis.call('ZADD', P .. 'ixm', minute, minute)
    redis.call('ZREMRANGEBYSCORE', P .. 'ixm', '-inf', '(' .. (minute - math.ceil(ms / 60000) - 1))
    redis.call('LPUSH', minute_list, name)
    redis.call('PEXPIRE', minute_list, px(ms + 60000))
    noted(minute_list, ms + 60000)
    return
  end
  redis.call('LPUSH', minute_list, name)
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

-- Hand a new value to every client waiting on the key (see backend_watch.lua).
local function notify(name, value)
  local waiting = P .. 'n:' .. name
  local lists = redis.call('SMEMBERS', waiting)
  if #lists > 0 then
    local message = #name .. ':' .. name .. value
    for _, list in ipairs(lists) do
      redis.call('RPUSH', list, message)
      redis.call('PEXPIRE', list, 60000)
    end
    redis.call('DEL', waiting)
  end
end

-- Store a value, keeping the fence given (or the one stored when fence is nil).
-- `unwatched` true: the caller knows nobody waits on the key (notify() is skipped).
local function store(name, key, value, ms, fence, unwatched)
  if ms <= 0 then
    redis.call('DEL', key)
    return
  end
  indexed(name, key, ms)
  redis.call('SET', key, fence .. ':' .. value, 'PX', px(ms))
  noted(key, ms)
  if not unwatched then
    notify(name, value)
  end
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
