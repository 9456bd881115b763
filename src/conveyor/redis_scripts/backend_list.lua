-- list: a page of task records, newest first, filtered by the fields of their JSON values.
-- Records are listed by the minute of their first write (P.."ixm", P.."ix:"..minute: see
-- backend_prelude.lua). One call reads at most BUDGET entries, so a filter that matches
-- little never holds Redis for long: the caller calls again from the cursor returned until
-- its page is full or the index ends.
--
-- ARGV[3]  offset: matching records to skip, in all
-- ARGV[4]  limit: matching records to return, in all
-- ARGV[5]  cursor: the minute to start in ("" for the newest), ARGV[6] the position in it
-- ARGV[7]  matching records skipped by the calls before this one
-- ARGV[8]  a number field that must be at least ARGV[9], or ""
-- ARGV[10], ARGV[11], ... pairs: a field and the string it must hold
-- Keys touched (read only):
--   P.."ixm"         [zset]    ZREVRANGEBYSCORE: the minutes, newest first
--   P.."ix:"..minute [list]    LRANGE
--   P.."v:"..key     [string]  MGET: the records (absent ones, expired, are passed over)
-- Returns: the cursor to go on from (minute, "" when the index ended; position), matches
-- skipped so far, then key, value, key, value, ... of the records this call returns.
local BUDGET = 5000
local offset, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local cursor, position, skipped = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local least_field, least = ARGV[8], tonumber(ARGV[9])
local equals = {}
for i = 10, #ARGV, 2 do
  equals[#equals + 1] = {ARGV[i], ARGV[i + 1]}
end
local filtered = least_field ~= '' or #equals > 0

local function matches(value)
  if not filtered then
    return true
  end
  local ok, data = pcall(cjson.decode, value)
  if not ok or type(data) ~= 'table' then
    return false
  end
  for _, pair in ipairs(equals) do
    if data[pair[1]] ~= pair[2] then
      return false
    end
  end
  if least_field ~= '' then
    local number = data[least_field]
    if type(number) ~= 'number' or number < least then
      return false
    end
  end
  return true
end

local out = {'', 0, 0}
local returned, read = 0, 0
local top = cursor == '' and '+inf' or cursor
while true do
  local minutes = redis.call('ZREVRANGEBYSCORE', P .. 'ixm', top, '-inf', 'LIMIT', 0, 100)
  if #minutes == 0 then
    break
  end
  for _, minute in ipairs(minutes) do
    local list = P .. 'ix:' .. minute
    local at = minute == cursor and position or 0
    while true do
      local names = redis.call('LRANGE', list, at, at + 199)
      if #names == 0 then
        break
      end
      local keys = {}
      for i, name in ipairs(names) do
        keys[i] = P .. 'v:' .. name
      end
      local values = redis.call('MGET', unpack(keys))
      for i, name in ipairs(names) do
        at, read = at + 1, read + 1
        local stored = values[i]
        if stored then
          local value = string.sub(stored, string.find(stored, ':', 1, true) + 1)
          if matches(value) then
            if skipped < offset then
              skipped = skipped + 1
            else
              out[#out + 1] = name
              out[#out + 1] = value
              returned = returned + 1
            end
          end
        end
        if returned >= limit or read >= BUDGET then
          out[1], out[2], out[3] = minute, at, skipped
          return out
        end
      end
    end
  end
  top = '(' .. minutes[#minutes]
end
out[3] = skipped
return out
