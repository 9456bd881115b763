-- Prepended to every coord_*.lua script (the Redis Coordinator) by conveyor.lua_script,
-- after expiring.lua.
--
-- Common ARGV of every coordinator script:
--   ARGV[1]  string  key prefix, "conveyor:" by default
--   ARGV[2]  string  the time as unix seconds, or "" to read Redis's own clock (TIME);
--                    only tests pass a (fake) time.
--
-- Key layout (P = the prefix; types in brackets). Expiry is judged by the scripts against
-- the time above; Redis TTLs (an hour longer when a fake time is passed) only collect
-- garbage.
--   P.."c:k:"..key       [string] "<expires_at>|<value>": a value with its expiry
--   P.."c:slot:"..key    [zset]   holders of the slots under key, score = expiry
--   P.."c:held:"..holder [set]    the slot keys a holder has (for extend)
--   P.."c:bucket:"..key  [hash]   a token bucket: t tokens, u last update (unix seconds)
--   P.."c:m:"..group     [hash]   a group's members: member -> "<expires_at>|<value>"
--   P.."c:l:"..key       [list]   a list's values, oldest first: "<expires_at>|<value>"
-- The call's own state, set by begin() before the script's body runs (conveyor.lua_script
-- calls it first): a prelude's top level runs once when Redis loads it as a function
-- library, so nothing there may depend on the call.
local P, NOWS, FAKE, NOW

local function begin()
  P = ARGV[1]
  NOWS = ARGV[2]
  FAKE = NOWS ~= ''
  if not FAKE then
    local t = redis.call('TIME')
    NOWS = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
  end
  NOW = tonumber(NOWS)
end

local function exact(x)
  return string.format('%.17g', x)
end

-- Redis TTL (ms) for something that logically lives `seconds`.
local function ttl_ms(seconds)
  local ms = math.ceil(seconds * 1000)
  if ms < 1 then
    ms = 1
  end
  if FAKE then
    ms = ms + 3600000
  end
  return ms
end

-- The live value of a "<expires_at>|<value>" key, or nil (live_value: expiring.lua).
local function live(key)
  return live_value(redis.call('GET', key), NOW)
end

local function put(key, value, seconds)
  if seconds <= 0 then
    redis.call('DEL', key)
    return
  end
  redis.call('SET', key, exact(NOW + seconds) .. '|' .. value, 'PX', ttl_ms(seconds))
end

-- Keep a slot set alive as long as its longest-lived holder.
local function keep_slots(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #last > 0 then
    redis.call('PEXPIRE', key, ttl_ms(tonumber(last[2]) - NOW))
  end
end

-- Keep a hash or list alive at least `seconds` more (never shortens it).
local function keep_at_least(key, seconds)
  local want = ttl_ms(seconds)
  if redis.call('PTTL', key) < want then
    redis.call('PEXPIRE', key, want)
  end
end
