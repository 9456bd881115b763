-- reserve: ack what the caller finished, collect what publishers handed it while it slept,
-- make due delayed messages ready, then take up to COUNT ready messages under a lease, in
-- the order the queues are given (the caller rotates it), highest priority and then oldest
-- first within a queue. Taking and leasing happen in this one atomic script: a taken
-- message is never only in a worker's memory. When nothing was taken and the caller is
-- about to sleep, it registers, so a publisher can hand it the next message directly
-- (broker_publish.lua; the prelude describes registrations).
--
-- ARGV[3]    count [integer]   how many messages at most (0: only ack and collect)
-- ARGV[4]    lease [seconds]   lease length; deadline = now + lease
-- ARGV[5]    token [string]    the lease token of this reservation (and registration)
-- ARGV[6]    revoked [string]  "" or the key prefix of the coordinator's revocations; each
--                              taken message's task id is appended and the key read
-- ARGV[7]    listed [string]   the coordinator's group of revoked ids (with revoked): a
--                              revocation is listed there first and outlives none of its
--                              members, so while it does not exist no key is read
-- ARGV[8]    drop [string]     "" or the caller's previous registration, to cancel; ""
--                              also when a publisher used it and the caller has seen the
--                              message it handed (registrations are used once)
-- ARGV[9]    inbox [string]    "" or the caller's inbox: collect it when drop is given
--                              (only a registration not yet dropped can have filled it),
--                              and register into it
-- ARGV[10]   register [string] "" or a new registration id, used when nothing was taken
-- ARGV[11]   ttl [seconds]     how long that registration lasts
-- ARGV[12]   nq [integer]      how many queue names follow
-- ARGV[13 .. 12+nq]            queue names
-- then the deliveries to ack first (as broker_ack.lua), in runs: token [string], queue
-- [string], n [integer], then n ids [string] (see ack_all() in the prelude)
-- Keys touched, for each queue Q given:
--   P.."d:"..Q      [zset]   ZRANGE 0 0 (the earliest eta); when that is due, ZRANGEBYSCORE
--                            -inf now (at most 1000 per call), ZREM, and ZRANGE 0 0 again
--   P.."p0:"..Q     [list]   RPUSH (due messages of priority 0); LRANGE + LTRIM, EXISTS
--                            (taken, see take_ready() in the prelude)
--   P.."q:"..Q      [zset]   ZADD (due messages of priority 1-9); ZPOPMIN, EXISTS (taken)
--   P.."seq"        [string] INCRBY: sequence numbers for due messages of priority 1-9, and
--                            for ids taken from the list (their ready score, should they
--                            be given back)
--   P.."b"          [hash]   HMGET ids: the priorities (due) and the bodies (taken)
--   P.."t"          [hash]   HMGET ids, then HSET id state for each (taken; see state() in
--                            the prelude): one call each for those taken from a queue
--   P.."l:"..Q      [zset]   ZADD ids with score now + lease, and KEEPER at +inf (see the
--                            prelude), one call for those taken
--   P.."w:"..Q      [list]   a wake token is left while Q still has ready messages (so
--                            another sleeping worker comes for them), deleted when Q is empty
--   P.."idle:"..Q   [zset]   ZREM drop; ZREMRANGEBYSCORE (expired), ZADD register
--   revoked..task   [string] MGET, one call for those taken (read only; "<expires_at>|<reason>",
--                            see coord_prelude.lua), when ARGV[7] exists
--   ARGV[7]         [hash]   EXISTS (read only), once a call that takes messages
-- and P.."reg:"..drop [string] DEL; P.."reg:"..register [string] SET PX;
-- P.."in:"..inbox [list] LRANGE, DEL (with drop); for the acks, as ack_all() in broker_prelude.lua:
-- P.."t" [hash] HMGET ids, HDEL ids; P.."b" [hash] HDEL ids; P.."l:"..Q [zset] ZREM ids
-- (after the new leases' ZADD).
-- Returns {earliest eta of the queues' delayed messages or "", now, acks ("1"/"0" per ack,
--          in order), "1" if registered else "", the number of handed items, the items
--          (see hand() in broker_prelude.lua), then per queue messages were taken from: its
--          position (1-based), how many were taken, 1 if their revocations were read else
--          0, and per message taken: id, its value in P.."b" (the priority digit, then the
--          body: cut by the caller, not here, where a new string costs Redis a copy),
--          delivery count, and (only if read) its revocation reason or false}. The queue
--          and the flag go once per queue, not per message: each element of a reply is a
--          conversion from Lua, paid per message.
local count = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local deadline = nil -- exact(NOW + lease) once a message is taken: a string, as Redis
                     -- would format a number argument with the same %.17g
local token = ARGV[5]
local revoked = ARGV[6]
local drop, inbox, register, ttl = ARGV[8], ARGV[9], ARGV[10], tonumber(ARGV[11])
local nq = tonumber(ARGV[12])
local first_queue, last = 13, 12 + nq
local MOVE = '1000' -- due messages moved per queue and call (text: see text())
local earliest = nil
local listed = nil -- whether any revocation exists (read once, when messages are taken)

-- The acked ids leave P.."l:"..Q only at the end (see ack_all): a lease set that never
-- empties between batches stays a skip list, and a batch of ZADDs into a small (listpack)
-- zset costs Redis a scan of it per member.
local acked, unleased = ack_all(last + 1, true)

-- The revocation reason (or false) of each id: one MGET for all of them (nil: none read,
-- or none revoked: every id's reason is false then).
local function revocations(ids)
  if revoked == '' then
    return nil
  end
  if listed == nil then
    listed = redis.call('EXISTS', ARGV[7]) == 1
  end
  if not listed then
    return nil
  end
  local reasons, keys = {}, {}
  for k, id in ipairs(ids) do
    keys[k] = revoked .. task_of(id)
  end
  local stored = chunked('MGET', nil, keys)
  for k = 1, #ids do
    reasons[k] = live_value(stored[k], NOW) or false  -- expiring.lua
  end
  return reasons
end

if count > 0 then
  for i = first_queue, last do
    local queue = ARGV[i]
    local dkey = P .. 'd:' .. queue
    local first = redis.call('ZRANGE', dkey, '0', '0', 'WITHSCORES')
    local due = {}
    if #first > 0 and tonumber(first[2]) <= NOW then
      due = redis.call('ZRANGEBYSCORE', dkey, '-inf', NOWS, 'LIMIT', '0', MOVE)
    end
    if #due > 0 then
      local ids, priorities = {}, {}
      local values = chunked('HMGET', P .. 'b', due)
      for k, id in ipairs(due) do
        if values[k] then
          ids[#ids + 1] = id
          priorities[#ids] = tonumber(string.sub(values[k], 1, 1))
        end
      end
      make_ready(queue, ids, priorities)
      chunked('ZREM', dkey, due)
      first = redis.call('ZRANGE', dkey, '0', '0', 'WITHSCORES')
    end
    if #first > 0 then
      local eta = tonumber(first[2])
      if earliest == nil or eta < earliest then
        earliest = eta
      end
    end
  end
end

local handed = {}
if drop ~= '' then
  redis.call('DEL', P .. 'reg:' .. drop)
  for i = first_queue, last do
    redis.call('ZREM', P .. 'idle:' .. ARGV[i], drop)
  end
end
if inbox ~= '' and drop ~= '' then
  local ikey = P .. 'in:' .. inbox
  handed = redis.call('LRANGE', ikey, '0', '-1')
  if #handed > 0 then
    redis.call('DEL', ikey)
  end
end

local taken = #handed
local out = {earliest and exact(earliest) or '', NOWS, acked, '', #handed}
for _, item in ipairs(handed) do
  out[#out + 1] = item
end
for i = first_queue, last do
  if taken >= count then
    break
  end
  local queue = ARGV[i]
  local ids, heads, rests, more = take_ready(queue, count - taken)
  if #ids > 0 then
    local values = chunked('HMGET', P .. 'b', ids)
    local before = chunked('HMGET', STATES, ids)
    local reasons = revocations(ids)
    -- KEEPER first: a new sorted set is made a skiplist by its first member's length
    deadline = deadline or exact(NOW + lease)
    local leases, states = {'inf', KEEPER}, {}
    -- explicit ends, not #t + 1: Lua's length operator is a search per use
    local n_out, n_states, n_leases = #out, 0, 2
    local group = n_out -- the queue's position, its count and the flag go here
    out[group + 1] = i - first_queue + 1
    out[group + 3] = reasons and 1 or 0
    n_out = group + 3
    local lead, tail = token .. '\t', '\t' .. queue -- a state's first and last fields
    for k = 1, #ids do
      local id, value = ids[k], values[k]
      if value then
        local delivered = 1
        if before[k] then -- delivered or re-sent before: count on from its n
          local _, n = parse(before[k])
          delivered = n + 1
        end
        states[n_states + 1] = id
        states[n_states + 2] = lead .. (TEXT[delivered] or text(delivered)) .. '\t' -- state()
          .. (heads[k] or string.sub(value, 1, 1) .. '\t') .. rests[k] .. tail
        leases[n_leases + 1] = deadline
        leases[n_leases + 2] = id
        out[n_out + 1] = id
        out[n_out + 2] = value
        out[n_out + 3] = delivered
        if reasons then
          out[n_out + 4] = reasons[k]
          n_out = n_out + 4
        else
          n_out = n_out + 3
        end
        n_states, n_leases = n_states + 2, n_leases + 2
        taken = taken + 1
      end
    end
    out[group + 2] = n_states / 2
    if n_states > 0 then
      states[n_states + 1] = KEEPER
      states[n_states + 2] = KEEPER
      chunked('HSET', STATES, states)
    end
    if #leases > 2 then
      chunked('ZADD', P .. 'l:' .. queue, leases)
    end
  end
  if more then
    wake(queue)
  else
    redis.call('DEL', P .. 'w:' .. queue)
  end
end
unlease(unleased)
if taken == 0 and register ~= '' then
  local reg = inbox .. '\t' .. token .. '\t' .. ARGV[4] .. '\t' .. revoked
  -- integers as text (%d): a number argument costs Redis a %.17g sprintf, and the
  -- expiry's score needs no fraction (the string's own TTL is what a claim obeys)
  local px = string.format('%d', math.ceil(ttl * 1000))
  redis.call('SET', P .. 'reg:' .. register, reg, 'PX', px)
  local expiry = string.format('%d', math.ceil(NOW + ttl))
  for i = first_queue, last do
    local zkey = P .. 'idle:' .. ARGV[i]
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', NOWS)
    redis.call('ZADD', zkey, expiry, register)
  end
  out[4] = '1'
end
return out
