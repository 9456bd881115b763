-- reserve: ack what the caller finished, make due delayed messages ready, then take up to
-- COUNT ready messages under a lease, in the order the queues are given (the caller rotates
-- it), highest priority and then oldest first within a queue. Taking and leasing happen in
-- this one atomic script: a taken message is never only in a worker's memory.
--
-- ARGV[3]    count [integer]   how many messages at most (0: only ack)
-- ARGV[4]    lease [seconds]   lease length; deadline = now + lease
-- ARGV[5]    token [string]    the lease token of this reservation
-- ARGV[6]    revoked [string]  "" or the key prefix of the coordinator's revocations; each
--                              taken message's task id is appended and the key read
-- ARGV[7]    nq [integer]      how many queue names follow
-- ARGV[8 .. 7+nq]              queue names
-- then pairs: id [string], token [string] of deliveries to ack first (as broker_ack.lua)
-- Keys touched, for each queue Q given:
--   P.."d:"..Q      [zset]   ZRANGEBYSCORE -inf now (at most 1000 per call), ZREM; ZRANGE 0 0
--                            for the earliest remaining eta
--   P.."seq"        [string] INCRBY: fresh sequence numbers for messages that became ready
--   P.."q:"..Q      [zset]   ZADD (due messages), ZPOPMIN (taken), EXISTS
--   P.."m:"..id     [hash]   HGET p, HSET s (due); HMGET b p n, HSET t n (taken)
--   P.."l:"..Q      [zset]   ZADD id with score now + lease
--   P.."w:"..Q      [list]   a wake token is left while Q still has ready messages (so
--                            another sleeping worker comes for them), deleted when Q is empty
--   revoked..task   [string] GET (read only; "<expires_at>|<reason>", see coord_prelude.lua)
-- and for each ack, as ack() in broker_prelude.lua: P.."m:"..id [hash] HMGET t q, DEL;
-- P.."l:"..Q [zset] ZREM id.
-- Returns {earliest eta of the queues' delayed messages or "", now, acks ("1"/"0" per ack,
--          in order), then per message: queue position (1-based), id, body, priority,
--          delivery count, revocation reason or false (nil when not read or not revoked)}.
local count = tonumber(ARGV[3])
local deadline = NOW + tonumber(ARGV[4])
local token = ARGV[5]
local revoked = ARGV[6]
local nq = tonumber(ARGV[7])
local last = 7 + nq
local MOVE = 1000
local earliest = nil

local acked = {}
for i = last + 1, #ARGV, 2 do
  acked[#acked + 1] = tostring(ack(ARGV[i], ARGV[i + 1]))
end

local function revocation(id)
  if revoked == '' then
    return false
  end
  local task = string.match(id, '^(.-)~%d+$') or id
  return live_value(redis.call('GET', revoked .. task), NOW) or false  -- expiring.lua
end

if count > 0 then
  for i = 8, last do
    local queue = ARGV[i]
    local dkey = P .. 'd:' .. queue
    local due = redis.call('ZRANGEBYSCORE', dkey, '-inf', NOWS, 'LIMIT', 0, MOVE)
    if #due > 0 then
      local seq = redis.call('INCRBY', P .. 'seq', #due) - #due
      local qkey = P .. 'q:' .. queue
      for _, id in ipairs(due) do
        local key = P .. 'm:' .. id
        local priority = redis.call('HGET', key, 'p')
        if priority then
          seq = seq + 1
          local score = ready_score(priority, seq)
          redis.call('HSET', key, 's', score)
          redis.call('ZADD', qkey, score, id)
        end
        redis.call('ZREM', dkey, id)
      end
    end
    local first = redis.call('ZRANGE', dkey, 0, 0, 'WITHSCORES')
    if #first > 0 then
      local eta = tonumber(first[2])
      if earliest == nil or eta < earliest then
        earliest = eta
      end
    end
  end
end

local out = {earliest and exact(earliest) or '', NOWS, table.concat(acked)}
local taken = 0
for i = 8, last do
  if taken >= count then
    break
  end
  local queue = ARGV[i]
  local qkey = P .. 'q:' .. queue
  local popped = redis.call('ZPOPMIN', qkey, count - taken)
  if #popped > 0 then
    local lkey = P .. 'l:' .. queue
    for j = 1, #popped, 2 do
      local id = popped[j]
      local key = P .. 'm:' .. id
      local fields = redis.call('HMGET', key, 'b', 'p', 'n')
      if fields[1] then
        local delivered = (tonumber(fields[3]) or 0) + 1
        redis.call('HSET', key, 't', token, 'n', delivered)
        redis.call('ZADD', lkey, deadline, id)
        out[#out + 1] = i - 7
        out[#out + 1] = id
        out[#out + 1] = fields[1]
        out[#out + 1] = fields[2]
        out[#out + 1] = delivered
        out[#out + 1] = revocation(id)
        taken = taken + 1
      end
    end
  end
  local w = P .. 'w:' .. queue
  if redis.call('EXISTS', qkey) == 1 then
    wake(queue)
  else
    redis.call('DEL', w)
  end
end
return out
