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
--   P.."wt:"..id    [list]   the same for one task sent on its own, registered by the
--                            broker's publish script (broker_publish.lua)
--   P.."expiry"     [zset]   fake-clock mode only: Redis key -> expiry (ms)
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

-- Hand a new value to every client waiting on the key (see backend_watch.lua). A list
-- lives as long as the registration had left (at least a second): its client reads it
-- within that, and a send nobody waits for leaves nothing behind for long.
local function notify(name, value)
  local waiting = P .. 'n:' .. name
  local lists = redis.call('SMEMBERS', waiting)
  if #lists > 0 then
    local message = #name .. ':' .. name .. value
    local ttl = math.max(redis.call('PTTL', waiting), 1000)
    for _, list in ipairs(lists) do
      redis.call('RPUSH', list, message)
      redis.call('PEXPIRE', list, ttl)
    end
    redis.call('DEL', waiting)
  end
end

-- Store a value, keeping the fence given (or the one stored when fence is nil).
local function store(name, key, value, ms, fence)
  if ms <= 0 then
    redis.call('DEL', key)
    return
  end
  redis.call('SET', key, fence .. ':' .. value, 'PX', px(ms))
  noted(key, ms)
  notify(name, value)
end
