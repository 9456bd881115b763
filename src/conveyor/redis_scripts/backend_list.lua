-- list: a page of task records, newest first (P.."ix", see backend_prelude.lua), filtered
-- by the fields of their JSON values. One call reads at most BUDGET index entries, so a
-- filter that matches little never holds Redis for long: the caller calls again from the
-- rank returned until the page is full or the index ends.
--
-- ARGV[3]  offset: matching records to skip, in all
-- ARGV[4]  limit: matching records to return, in all
-- ARGV[5]  the index rank to start reading at
-- ARGV[6]  matching records skipped by the calls before this one
-- ARGV[7]  a number field that must be at least ARGV[8], or ""
-- ARGV[9], ARGV[10], ... pairs: a field and the string it must hold
-- Keys touched:
--   P.."ix"       [zset]    ZREVRANGE; ZREM of entries whose record has expired
--   P.."v:"..key  [string]  MGET
-- Returns: next rank (-1 when the index ended), matches skipped so far, then key, value,
-- key, value, ... of the records returned by this call.
local BUDGET = 5000
local offset, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local rank, skipped = tonumber(ARGV[5]), tonumber(ARGV[6])
local least_field, least = ARGV[7], tonumber(ARGV[8])
local equals = {}
for i = 9, #ARGV, 2 do
  equals[#equals + 1] = {ARGV[i], ARGV[i + 1]}
end
local filtered = least_field ~= '' or #equals > 0
if not filtered and skipped < offset then
  rank, skipped = rank + offset - skipped, offset -- no filter: ranks are matches
end

local function matches(stored)
  if not filtered then
    return true
  end
  local colon = string.find(stored, ':', 1, true)
  local ok, data = pcall(cjson.decode, string.sub(stored, colon + 1))
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

local out = {0, 0}
local returned, read, stale = 0, 0, {}
while returned < limit and read < BUDGET do
  local names = redis.call('ZREVRANGE', P .. 'ix', rank, rank + 199)
  if #names == 0 then
    rank = -1
    break
  end
  local keys = {}
  for i, name in ipairs(names) do
    keys[i] = P .. 'v:' .. name
  end
  local values = redis.call('MGET', unpack(keys))
  for i, name in ipairs(names) do
    rank, read = rank + 1, read + 1
    local stored = values[i]
    if not stored then
      stale[#stale + 1] = name
    elseif matches(stored) then
      if skipped < offset then
        skipped = skipped + 1
      else
        out[#out + 1] = name
        out[#out + 1] = string.sub(stored, string.find(stored, ':', 1, true) + 1)
        returned = returned + 1
        if returned >= limit then
          break
        end
      end
    end
  end
end
if #stale > 0 then
  redis.call('ZREM', P .. 'ix', unpack(stale))
  if rank ~= -1 then
    rank = rank - #stale -- the entries read after them moved up
  end
end
out[1], out[2] = rank, skipped
return out
