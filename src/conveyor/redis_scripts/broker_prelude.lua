-- Prepended to every broker_*.lua script by conveyor.redis_connection, after expiring.lua
-- (Redis has no include).
--
-- Common ARGV of every broker script:
--   ARGV[1]  string  key prefix, "conveyor:" by default; every key below starts with it
--   ARGV[2]  string  the time as unix seconds ("1700000000.25"), or "" to read Redis's own
--                    clock with TIME. Production always passes "": etas and leases are
--                    judged on one clock, the server's, never on a client's (skewed) one.
--                    Only the contract tests pass a fake clock's value.
--
-- Key layout of the broker (P = the prefix; types in brackets):
--   P.."b"          [hash]  every live message: field id, value its priority digit (0-9) and
--                           then its body (body_of() below). A field here means "live". One
--                           hash for all: a small per-message hash stays compact (listpack)
--                           only while every value is short, and bodies are not.
--   P.."m:"..id     [hash]  a message's delivery state, from its first delivery (or its
--                           re-send from the dead letters) until it is finished: q queue,
--                           p priority, n delivery count plus RESENT times the number of
--                           re-sends (one HINCRBY reads both), s ready score (from its last
--                           reservation), t lease token (present only while reserved).
--                           Absent for a message never delivered nor re-sent.
--   P.."p"..d..":"..queue [list] ready ids of priority d (0-9) in the order sent: RPUSH
--                           to send, LRANGE + LTRIM to take (ready_key(), take_ready())
--   P.."q:"..queue  [zset]  ready ids given back (nack, an expired lease), score (9 -
--                           priority) * 2^49 + sequence (the order they were first taken
--                           in). Within a priority they are older than every id of its
--                           list, so take_ready() takes them first. A queue written by a
--                           version before the lists keeps its ready ids here, with the
--                           same scores, so they are taken as before.
--   P.."d:"..queue  [zset]  delayed ids, score eta (unix seconds)
--   P.."l:"..queue  [zset]  reserved ids, score lease deadline (unix seconds)
--   P.."w:"..queue  [list]  at most one wake token; workers BLPOP it to sleep without polling
--   P.."queues"     [set]   every queue name ever published to
--   P.."seq"        [string] counter that orders messages of equal priority
--   P.."dl:"..id    [hash]  a dead letter: q queue, p priority, b body, r reason,
--                           f failed_at (unix seconds, as a decimal string), e how many
--                           times it had been re-sent (absent: never)
--   P.."dead"       [zset]  dead-letter ids, score failed_at
--   P.."idle:"..queue [zset] registrations of workers sleeping on the queue, score expiry
--   P.."reg:"..reg  [string] one registration (see claim() below), with a TTL
--   P.."in:"..inbox [list]  messages handed to one sleeping worker thread (see hand())
--
-- Keys are built from the prefix inside the scripts (ids and queue names come from Redis
-- itself when reserving and recovering), so the scripts need a standalone Redis (or one
-- primary), not Redis Cluster.
local P = ARGV[1]
local NOWS = ARGV[2]
if NOWS == '' then
  local t = redis.call('TIME')
  NOWS = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
local NOW = tonumber(NOWS)
local SHIFT = 562949953421312 -- 2^49: scores stay exact doubles up to 2^53
local RESENT = 4294967296 -- 2^32: a re-send's step in P.."m:"..id's n (exact up to 2^21 re-sends)

-- A priority as the integer 0-9 (out of range values are clamped).
local function digit(priority)
  local p = tonumber(priority) or 0
  if p < 0 then p = 0 elseif p > 9 then p = 9 end
  return math.floor(p)
end

local function ready_score(priority, seq)
  return (9 - digit(priority)) * SHIFT + seq
end

-- A live message's body and priority (the value P.."b" holds for it), or nil.
local function body_of(id)
  local value = redis.call('HGET', P .. 'b', id)
  if not value then
    return nil
  end
  return string.sub(value, 2), tonumber(string.sub(value, 1, 1))
end

-- Leave one wake token for the workers of a queue, unless one is already waiting there.
local function wake(queue)
  local w = P .. 'w:' .. queue
  if redis.call('LLEN', w) == 0 then
    redis.call('RPUSH', w, '1')
  end
end

-- Format a number as a string that round-trips exactly (Lua's tostring keeps 14 digits).
local function exact(x)
  return string.format('%.17g', x)
end

-- Delete a finished message, only while `token` is its current lease token: 1 when
-- deleted, 0 (nothing changed) when the token is stale or the id unknown.
-- Keys: P.."m:"..id [hash] HMGET t q, DEL; P.."b" [hash] HDEL id; P.."l:"..Q [zset] ZREM id
-- (Q: the message's queue).
local function ack(id, token)
  local key = P .. 'm:' .. id
  local fields = redis.call('HMGET', key, 't', 'q')
  if fields[1] ~= token then
    return 0
  end
  redis.call('DEL', key)
  redis.call('HDEL', P .. 'b', id)
  redis.call('ZREM', P .. 'l:' .. fields[2], id)
  return 1
end

-- Run a variadic command over many items, CHUNK at a time (unpack() has a stack limit);
-- the replies of a command that returns a list are joined in order. `key` may be nil
-- (MGET, DEL). CHUNK is even, so (score, member) pairs never split.
local CHUNK = 1000
local function chunked(command, key, items)
  local out = {}
  for from = 1, #items, CHUNK do
    local upto = math.min(from + CHUNK - 1, #items)
    local part
    if key then
      part = redis.call(command, key, unpack(items, from, upto))
    else
      part = redis.call(command, unpack(items, from, upto))
    end
    if type(part) == 'table' then
      for i = 1, #part do
        out[#out + 1] = part[i]
      end
    end
  end
  return out
end

-- How many of `keys` exist: variadic EXISTS, CHUNK keys a call.
local function how_many_exist(keys)
  local total = 0
  for from = 1, #keys, CHUNK do
    total = total + redis.call('EXISTS', unpack(keys, from, math.min(from + CHUNK - 1, #keys)))
  end
  return total
end

-- Remove acked ids from their queues' lease sets: `unleased` maps queue -> ids.
local function unlease(unleased)
  for queue, members in pairs(unleased) do
    chunked('ZREM', P .. 'l:' .. queue, members)
  end
end

-- ack() for the (id, token) pairs ARGV[from], ARGV[from + 1], ... in one pass: one HMGET
-- per message for the fencing, then one variadic DEL, HDEL and ZREM per queue for all
-- that matched (a Lua call per command, not per message and command). An id given twice
-- is acked once. Returns the list of 1 (deleted) or 0 (stale token), in order, and the
-- acked ids by queue. `defer`: leave them in their lease sets for the caller's unlease().
-- Keys: as ack().
local function ack_all(from, defer)
  local flags, keys, ids, queues, done = {}, {}, {}, {}, {}
  for i = from, #ARGV - 1, 2 do
    local id = ARGV[i]
    local key = P .. 'm:' .. id
    local fields = redis.call('HMGET', key, 't', 'q')
    if done[id] or fields[1] ~= ARGV[i + 1] then
      flags[#flags + 1] = 0
    else
      done[id] = true
      flags[#flags + 1] = 1
      keys[#keys + 1] = key
      ids[#ids + 1] = id
      local members = queues[fields[2]]
      if not members then
        members = {}
        queues[fields[2]] = members
      end
      members[#members + 1] = id
    end
  end
  if #ids > 0 then
    chunked('DEL', nil, keys)
    chunked('HDEL', P .. 'b', ids)
    if not defer then
      unlease(queues)
    end
  end
  return flags, queues
end

-- The ready list of one priority of a queue.
local function ready_key(queue, priority)
  return P .. 'p' .. priority .. ':' .. queue
end

-- Whether a queue has any ready message: one EXISTS over its zset and its ten lists.
local function has_ready(queue)
  local keys = {P .. 'q:' .. queue}
  for d = 9, 0, -1 do
    keys[#keys + 1] = ready_key(queue, d)
  end
  return redis.call('EXISTS', unpack(keys)) > 0
end

-- Take up to n ready ids of a queue: highest priority first; within a priority the given
-- back ids (P.."q:"..queue, by score) and then the list's, oldest first. Returns the ids
-- and their ready scores; an id from a list gets a fresh sequence number (one INCRBY for
-- all), so if it is given back later it keeps the order it was taken in.
-- Keys: P.."q:"..queue [zset] EXISTS, ZRANGEBYSCORE, ZREM; P.."p"..d..":"..queue [list]
-- LRANGE, LTRIM; P.."seq" [string] INCRBY.
local function take_ready(queue, n)
  local ids, scores, listed = {}, {}, {}
  local zkey = P .. 'q:' .. queue
  local given_back = redis.call('EXISTS', zkey) == 1
  for d = 9, 0, -1 do
    if #ids >= n then
      break
    end
    if given_back then
      local low = (9 - d) * SHIFT
      local got = redis.call('ZRANGEBYSCORE', zkey, exact(low), '(' .. exact(low + SHIFT),
        'WITHSCORES', 'LIMIT', 0, n - #ids)
      if #got > 0 then
        local members = {}
        for j = 1, #got, 2 do
          ids[#ids + 1] = got[j]
          scores[#scores + 1] = got[j + 1]
          members[#members + 1] = got[j]
        end
        redis.call('ZREM', zkey, unpack(members))
      end
    end
    if #ids < n then
      local lkey = ready_key(queue, d)
      local got = redis.call('LRANGE', lkey, 0, n - #ids - 1)
      if #got > 0 then
        redis.call('LTRIM', lkey, #got, -1)
        for _, id in ipairs(got) do
          ids[#ids + 1] = id
          scores[#scores + 1] = d
          listed[#listed + 1] = #ids
        end
      end
    end
  end
  if #listed > 0 then
    local seq = redis.call('INCRBY', P .. 'seq', #listed) - #listed
    for j, k in ipairs(listed) do
      scores[k] = exact(ready_score(scores[k], seq + j))
    end
  end
  return ids, scores
end

-- Make ids ready at the end of their priority's list (sent, due, or re-sent): `ids` is a
-- table priority digit -> ids in order. Keys: P.."p"..d..":"..queue [list] RPUSH.
local function push_ready(queue, ids)
  for d, members in pairs(ids) do
    chunked('RPUSH', ready_key(queue, d), members)
  end
end

-- Sleeping workers (handoff). A worker about to sleep registers (broker_reserve.lua): a
-- string P.."reg:"..reg holding "<inbox>\t<token>\t<lease seconds>\t<revocation prefix>",
-- with a TTL, and reg in the zset P.."idle:"..Q of each of its queues (score: expiry).
-- A publisher claims one registration (deleting it: it is used once) and hands the message
-- over; stale members (their string gone) are dropped on the way.
local function claim(queue)
  local zkey = P .. 'idle:' .. queue
  while true do
    local first = redis.call('ZRANGE', zkey, 0, 0)
    if #first == 0 then
      return nil
    end
    redis.call('ZREM', zkey, first[1])
    local rkey = P .. 'reg:' .. first[1]
    local reg = redis.call('GET', rkey)
    if reg then
      redis.call('DEL', rkey)
      return reg
    end
  end
end

-- One length-prefixed field ("<bytes>:<value>") of an inbox item.
local function field(value)
  return #value .. ':' .. value
end

-- Lease a new message (its body already in P.."b") to the worker of a claimed registration
-- and push it to its inbox. It gets no ready score (s): a nack or an expired lease gives
-- it a fresh one. An item is the fields id, queue, body, priority, token,
-- revocation ("" for none) and "1" when the revocation was read ("0" otherwise), each as
-- field() writes it.
local function hand(reg, id, queue, priority, body)
  local inbox, token, lease, revoked = string.match(reg, '^(.-)\t(.-)\t(.-)\t(.*)$')
  local key = P .. 'm:' .. id
  redis.call('HSET', key, 'p', priority, 'q', queue, 'n', 1, 't', token)
  redis.call('ZADD', P .. 'l:' .. queue, NOW + tonumber(lease), id)
  local reason, read = '', '0'
  if revoked ~= '' then
    read = '1'
    local task = string.match(id, '^(.-)~%d+$') or id
    reason = live_value(redis.call('GET', revoked .. task), NOW) or ''
  end
  local ikey = P .. 'in:' .. inbox
  redis.call('RPUSH', ikey, field(id) .. field(queue) .. field(body) .. field(priority)
    .. field(token) .. field(reason) .. read)
  redis.call('PEXPIRE', ikey, math.ceil(tonumber(lease) * 1000))
end
