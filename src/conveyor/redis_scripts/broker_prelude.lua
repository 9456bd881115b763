-- Prepended to every broker_*.lua script by conveyor.lua_script, after expiring.lua
-- (Redis has no include).
--
-- Common ARGV of every broker script:
--   ARGV[1]  string  key prefix, "conveyor:" by default; every key below starts with it
--   ARGV[2]  string  the time as unix seconds ("1700000000.25"), or "" to read Redis's own
--                    clock with TIME, or "?" to read it only if the script needs it
--                    (now() below). Production passes "" or "?": etas and leases are
--                    judged on one clock, the server's, never on a client's (skewed) one.
--                    Only the contract tests pass a fake clock's value.
--
-- Key layout of the broker (P = the prefix; types in brackets):
--   P.."b"          [hash]  every live message: field id, value its priority digit (0-9) and
--                           then its body (body_of() below). A field here means "live". One
--                           hash for all: a small per-message hash stays compact (listpack)
--                           only while every value is short, and bodies are not.
--   P.."t"          [hash]  every message's delivery state, from its first delivery (or its
--                           re-send from the dead letters) until it is finished: field id,
--                           value "<t>\t<n>\t<p>\t<s>\t<q>" (state() below): t the lease
--                           token ("" while not reserved), n the delivery count plus RESENT
--                           times the number of re-sends, p the priority, s the ready score
--                           from its last reservation ("" before it has one; "<seq>+<j>"
--                           for the j-th id a reservation took from the list, whose score is
--                           that of sequence number seq + j: see score_text()), q the queue.
--                           No field for a message never delivered nor re-sent; KEEPER
--                           (below) once a batch was reserved. One hash for
--                           all, so a batch reads, writes and deletes its states with one
--                           variadic command each, not a command per message. (Earlier
--                           builds kept a hash P.."m:"..id per message, fields t q p s n:
--                           recover_expired still reads one, so a lease an earlier build's
--                           worker held comes back when it expires.)
--   P.."p0:"..queue [list]  ready ids of priority 0 (the default) in the order sent: a
--                           send is one RPUSH; LRANGE + LTRIM take them (take_ready())
--   P.."q:"..queue  [zset]  every other ready id: those of priorities 1-9, and those of
--                           priority 0 given back (nack, an expired lease), score
--                           (9 - priority) * 2^49 + sequence: higher priority first, then
--                           oldest first (ZPOPMIN order). Its priority 0 ids are older than
--                           the list's, so take_ready() takes it first. (Before the list,
--                           every ready id was here, so a queue left by an earlier version
--                           is taken as before.)
--   P.."d:"..queue  [zset]  delayed ids, score eta (unix seconds)
--   P.."l:"..queue  [zset]  reserved ids, score lease deadline (unix seconds), and KEEPER
--                           (below) at +inf once the queue had a batch reserved
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
-- The call's own state, set by begin() before the script's body runs (conveyor.lua_script
-- calls it first): a prelude's top level runs once when Redis loads it as a function
-- library, so nothing there may depend on the call.
local P, NOWS, NOW, STATES -- NOW: nil for "?" (see now())
local SHIFT = 562949953421312 -- 2^49: scores stay exact doubles up to 2^53
local RESENT = 4294967296 -- 2^32: a re-send's step in a state's n (exact up to 2^21 re-sends)

-- Redis's clock as "<seconds>.<microseconds, six digits>" (the microseconds padded by
-- hand: string.format is a C sprintf, a dozen times the cost of the concatenation).
local ZEROS = {'00000', '0000', '000', '00', '0', ''}
local function time_text()
  local t = redis.call('TIME')
  local micro = t[2]
  return t[1] .. '.' .. ZEROS[#micro] .. micro
end

local function begin()
  P = ARGV[1]
  NOWS = ARGV[2]
  if NOWS == '' then
    NOWS = time_text()
  end
  NOW = tonumber(NOWS)
  STATES = P .. 't'
end

-- A small count (a delivery count, a batch size, a list index) as text, to store or to
-- pass to redis.call: string.format is a C sprintf, and Redis formats a number argument
-- with a %.17g one, several times the cost of a table read. Kept across calls where the
-- script is a function library (its table lives with it).
local TEXT = {'1', '2', '3', '4', '5', '6', '7', '8', '9'}
local function text(n)
  local known = TEXT[n]
  if known then
    return known
  end
  known = string.format('%d', n)
  if n >= -1 and n <= 10000 then
    TEXT[n] = known
  end
  return known
end

-- A message's state as P.."t" holds it (see above); n is a number, the rest strings.
local function state(t, n, p, s, q)
  local count = TEXT[n] or text(n) -- the lookup inline: a first delivery, per message
  return t .. '\t' .. count .. '\t' .. p .. '\t' .. s .. '\t' .. q
end

-- The fields of a state: t, n (a number), p, s, q.
local function parse(value)
  local t, n, p, s, q = string.match(value, '^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$')
  return t, tonumber(n), p, s, q
end

-- The token and queue of a state, or nil for none: all an ack needs. Plain finds, not a
-- pattern: an ack reads one state per message, and a pattern costs Lua ~50 steps a byte.
local function holder(value)
  if not value then
    return nil
  end
  local at = string.find(value, '\t', 1, true)
  local token = string.sub(value, 1, at - 1)
  for _ = 1, 3 do
    at = string.find(value, '\t', at + 1, true)
  end
  return token, string.sub(value, at + 1)
end

-- A member every batch reservation adds to its queue's lease set, at +inf (so it is never
-- due, and never given back): longer than zset-max-listpack-value (64 bytes by default),
-- so the set is a skiplist from then on and, never emptying, stays one. A small sorted
-- set is a listpack, which Redis scans on every insert and delete: with up to 128
-- leases, a batch's ZADD and the acks' ZREM cost it a scan per message (at batches of 64,
-- about 10 us a message). stats() does not count it; no id starts with a NUL byte.
-- A batch reservation also keeps it as a field of P.."t", with itself as its value, for
-- the same reason: a small hash is a listpack, scanned on every HMGET, HSET and HDEL of a
-- field, and the acks of a batch would empty it (deleting it) before the next one.
local KEEPER = '\0conveyor: keeps this lease set a skiplist'
  .. '................................................................................'

-- The time, read from Redis on first use when ARGV[2] is "?" (broker_publish.lua: most
-- sends need it only for an eta or a handoff). Call it before anything that reads NOW.
local function now()
  if not NOW then
    NOWS = time_text()
    NOW = tonumber(NOWS)
  end
  return NOW
end

-- A priority as the integer 0-9 (out of range values are clamped).
local function digit(priority)
  local p = tonumber(priority) or 0
  if p < 0 then p = 0 elseif p > 9 then p = 9 end
  return math.floor(p)
end

-- A priority as its digit's text: the text given when it is one already (a send's
-- priority almost always is), without tostring()'s sprintf.
local DIGITS = {
  ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4',
  ['5'] = '5', ['6'] = '6', ['7'] = '7', ['8'] = '8', ['9'] = '9',
}
local function digit_text(priority)
  return DIGITS[priority] or tostring(digit(priority))
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

-- A reserved message's state, only while `token` is its current lease token: n (a number),
-- p, s, q; nil when the token is stale or the id unknown. Keys: P.."t" [hash] HGET id.
local function leased(id, token)
  local value = redis.call('HGET', STATES, id)
  if not value then
    return nil
  end
  local t, n, p, s, q = parse(value)
  if t ~= token then
    return nil
  end
  return n, p, s, q
end

-- Delete a finished message, only while `token` is its current lease token: 1 when
-- deleted, 0 (nothing changed) when the token is stale or the id unknown.
-- Keys: P.."t" [hash] HGET id, HDEL id; P.."b" [hash] HDEL id; P.."l:"..Q [zset] ZREM id
-- (Q: the message's queue).
local function ack(id, token)
  local t, queue = holder(redis.call('HGET', STATES, id))
  if t ~= token then
    return 0
  end
  redis.call('HDEL', STATES, id)
  redis.call('HDEL', P .. 'b', id)
  redis.call('ZREM', P .. 'l:' .. queue, id)
  return 1
end

-- Run a variadic command over many items, CHUNK at a time (unpack() has a stack limit);
-- the replies of a command that returns a list are joined in order. `key` may be nil
-- (MGET, DEL). CHUNK is even, so (score, member) pairs never split.
local CHUNK = 1000
local function chunked(command, key, items)
  if #items == 0 then
    return {}
  elseif #items <= CHUNK then -- one call, its reply as it is
    if key then
      return redis.call(command, key, unpack(items))
    end
    return redis.call(command, unpack(items))
  end
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

-- Remove acked ids from their queues' lease sets: `unleased` lists {queue, ids} and, for
-- ids still in ARGV, {queue, nil, first, last} (no table made of them).
local function unlease(unleased)
  for _, entry in ipairs(unleased) do
    local key = P .. 'l:' .. entry[1]
    if entry[2] then
      chunked('ZREM', key, entry[2])
    else
      redis.call('ZREM', key, unpack(ARGV, entry[3], entry[4]))
    end
  end
end

-- ack() for the acks given from ARGV[from] on, in runs of one reservation's deliveries
-- of one queue: token, queue, n [integer], then n ids (a batch's acks are mostly one run).
-- One variadic HMGET of their states for the fencing, then one variadic HDEL of P.."t" and
-- of P.."b" for all that matched, and one ZREM per queue (a Lua call per command, not per
-- message and command). A state matches when it starts with "<token>\t" and ends with
-- "\t<queue>" (state() above): two plain finds, no substring made per ack. An id given
-- twice is acked once. Returns the verdicts as text, "1" (deleted) or "0" (stale token)
-- per ack in order, and the acked ids for unlease(). `defer`: leave them in their lease
-- sets for the caller's unlease(). Keys: as ack().
-- One run whose every ack matches (a worker's batch) takes a path that makes no table per
-- message: the ids go to each command straight from ARGV.
local function ack_all(from, defer)
  if from > #ARGV then
    return '', {}
  elseif #ARGV == from + 3 then -- one ack: as ack(), nothing to batch
    return ack(ARGV[from + 3], ARGV[from]) == 1 and '1' or '0', {}
  end
  local count = tonumber(ARGV[from + 2])
  local first, last = from + 3, from + 2 + count
  if last == #ARGV and count <= CHUNK then
    local lead, queue = ARGV[from] .. '\t', ARGV[from + 1]
    local tail = '\t' .. queue
    local values = redis.call('HMGET', STATES, unpack(ARGV, first, last))
    local all = true
    for k = 1, count do
      local value = values[k]
      if
        not (value
        and string.find(value, lead, 1, true) == 1
        and string.find(value, tail, #value - #tail + 1, true))
      then
        all = false
        break
      end
    end
    if all then
      local verdicts = string.rep('1', count)
      if redis.call('HDEL', STATES, unpack(ARGV, first, last)) < count then
        local seen, flags = {}, {} -- an id given twice: the later ones read 0
        for k = 1, count do
          local id = ARGV[first + k - 1]
          flags[k] = seen[id] and '0' or '1'
          seen[id] = true
        end
        verdicts = table.concat(flags)
      end
      redis.call('HDEL', P .. 'b', unpack(ARGV, first, last))
      local unleased = {{queue, nil, first, last}}
      if not defer then
        unlease(unleased)
      end
      return verdicts, unleased
    end
  end
  local asked, runs, n = {}, {}, 0
  local i = from
  while i < #ARGV do
    count = tonumber(ARGV[i + 2])
    -- the run's lead, tail and queue, referenced by each of its acks
    local run = {ARGV[i] .. '\t', '\t' .. ARGV[i + 1], ARGV[i + 1]}
    for j = i + 3, i + 2 + count do
      n = n + 1
      asked[n] = ARGV[j]
      runs[n] = run
    end
    i = i + 3 + count
  end
  local values = chunked('HMGET', STATES, asked)
  local flags, ids, queues, unleased, done = {}, {}, {}, {}, {}
  local n_ids, last_queue, members, n_members = 0, nil, nil, 0
  for k = 1, n do -- numeric: ipairs() is a call per step
    local id, value, run = asked[k], values[k], runs[k]
    local tail = run[2]
    if
      value and not done[id]
      and string.find(value, run[1], 1, true) == 1
      and string.find(value, tail, #value - #tail + 1, true)
    then
      done[id] = true
      flags[k] = '1'
      n_ids = n_ids + 1
      ids[n_ids] = id
      local queue = run[3]
      if queue ~= last_queue then -- a batch's acks are mostly of one queue
        members = queues[queue]
        if not members then
          members = {}
          queues[queue] = members
          unleased[#unleased + 1] = {queue, members}
        end
        last_queue, n_members = queue, #members
      end
      n_members = n_members + 1
      members[n_members] = id
    else
      flags[k] = '0'
    end
  end
  if n_ids > 0 then
    chunked('HDEL', STATES, ids)
    chunked('HDEL', P .. 'b', ids)
    if not defer then
      unlease(unleased)
    end
  end
  return table.concat(flags), unleased
end

-- The list of a queue's ready messages of priority 0 (the default), in the order sent.
local function list_key(queue)
  return P .. 'p0:' .. queue
end

-- Make ids ready behind every ready message of their priority: priority 0 to the list,
-- the others to the sorted set with fresh sequence numbers (one INCRBY for all).
-- ids[k] has the priority digit priorities[k]. Keys: P.."p0:"..queue [list] RPUSH;
-- P.."seq" [string] INCRBY; P.."q:"..queue [zset] ZADD.
local function make_ready(queue, ids, priorities)
  local listed, scored = {}, {}
  for k, id in ipairs(ids) do
    if priorities[k] == 0 then
      listed[#listed + 1] = id
    else
      scored[#scored + 1] = k
    end
  end
  if #listed > 0 then
    chunked('RPUSH', list_key(queue), listed)
  end
  if #scored > 0 then
    local seq = redis.call('INCRBY', P .. 'seq', text(#scored)) - #scored
    local items = {}
    for j, k in ipairs(scored) do
      items[#items + 1] = ready_score(priorities[k], seq + j)
      items[#items + 1] = ids[k]
    end
    chunked('ZADD', P .. 'q:' .. queue, items)
  end
end

-- Take up to n ready ids of a queue, highest priority first and oldest first within a
-- priority: the sorted set's (every priority above 0, and priority 0 ids given back, which
-- are older than the list's) and then the list's. Returns the ids, the parts of their
-- states that take_ready() knows, and whether the queue may have more. Ids from the list
-- get fresh sequence numbers (one INCRBY), so if they are given back later they keep the
-- order they were taken in: the j-th one's is the batch's seq + j, kept in its state as
-- "<seq>+<j>" (score_text()), made of a text shared by the batch and j's text, so nothing
-- is formatted per message (a C sprintf and a new string each: 3% of a drained task's
-- Redis instructions) and the state stays short. The parts, joined they are the state's
-- "<p>\t<s>": heads[k], "0\t<seq>+" (false for an id from the sorted set: its caller
-- puts its priority digit and a tab there), and rests[k], j's text (or that id's score).
-- Keys: P.."q:"..queue [zset] ZPOPMIN, EXISTS; P.."p0:"..queue [list] LRANGE, LTRIM,
-- EXISTS; P.."seq" [string] INCRBY.
local function take_ready(queue, n)
  -- explicit count: '#t' is a search per use
  local ids, heads, rests, taken = {}, {}, {}, 0
  local zkey = P .. 'q:' .. queue
  local popped = redis.call('ZPOPMIN', zkey, text(n))
  for j = 1, #popped, 2 do
    taken = taken + 1
    ids[taken] = popped[j]
    heads[taken] = false
    rests[taken] = popped[j + 1]
  end
  if taken < n then
    local lkey = list_key(queue)
    local got = redis.call('LRANGE', lkey, '0', text(n - taken - 1))
    local count = #got
    if count > 0 then
      redis.call('LTRIM', lkey, text(count), '-1')
      local seq = redis.call('INCRBY', P .. 'seq', text(count)) - count
      local head = '0\t' .. string.format('%d', seq) .. '+' -- the list holds priority 0
      for j = 1, count do
        taken = taken + 1
        ids[taken] = got[j]
        heads[taken] = head
        rests[taken] = TEXT[j] or text(j)
      end
    end
  end
  -- fewer than n taken: both were emptied
  local more = taken >= n and redis.call('EXISTS', zkey, list_key(queue)) > 0
  return ids, heads, rests, more
end

-- A state's ready score s (of priority p) as ZADD takes it: "<seq>+<j>" (take_ready())
-- is the score of sequence number seq + j.
local function score_text(s, p)
  local plus = string.find(s, '+', 1, true)
  if not plus then
    return s
  end
  local seq = tonumber(string.sub(s, 1, plus - 1)) + tonumber(string.sub(s, plus + 1))
  return string.format('%d', ready_score(p, seq))
end

-- Sleeping workers (handoff). A worker about to sleep registers (broker_reserve.lua): a
-- string P.."reg:"..reg holding "<inbox>\t<token>\t<lease seconds>\t<revocation prefix>",
-- with a TTL, and reg in the zset P.."idle:"..Q of each of its queues (score: its expiry,
-- rounded up to a whole second). A publisher claims one registration (deleting it: it is
-- used once) and hands the message over; stale members (their string gone) are dropped on
-- the way.
local function claim(queue)
  local zkey = P .. 'idle:' .. queue
  while true do
    local first = redis.call('ZPOPMIN', zkey)
    if #first == 0 then
      return nil
    end
    local rkey = P .. 'reg:' .. first[1]
    local reg = redis.call('GET', rkey)
    if reg then
      redis.call('DEL', rkey)
      return reg
    end
  end
end

-- The task id of a message id: a copy re-sent from the dead letters is "<task>~<n>".
-- A plain find first: most ids hold no '~', and a pattern costs Lua ~50 steps a byte.
local function task_of(id)
  if not string.find(id, '~', 1, true) then
    return id
  end
  return string.match(id, '^(.-)~%d+$') or id
end

-- Lease a new message (its body already in P.."b") to the worker of a claimed registration
-- and push it to its inbox. It gets no ready score (s): a nack or an expired lease gives
-- it a fresh one. An item is the fields id, queue, body, priority, token,
-- revocation ("" for none), each as "<bytes>:<value>", then "1" when the revocation was
-- read ("0" otherwise): one concatenation, its lengths from text() (a number's '..'
-- is a C sprintf in Lua), and the registration split by plain finds, not a pattern.
local function hand(reg, id, queue, priority, body)
  local a = string.find(reg, '\t', 1, true)
  local b = string.find(reg, '\t', a + 1, true)
  local c = string.find(reg, '\t', b + 1, true)
  local inbox, token = string.sub(reg, 1, a - 1), string.sub(reg, a + 1, b - 1)
  local lease, revoked = tonumber(string.sub(reg, b + 1, c - 1)), string.sub(reg, c + 1)
  redis.call('HSET', STATES, id, state(token, 1, priority, '', queue))
  redis.call('ZADD', P .. 'l:' .. queue, NOW + lease, id)
  local reason, read = '', '0'
  if revoked ~= '' then
    read = '1'
    reason = live_value(redis.call('GET', revoked .. task_of(id)), NOW) or ''
  end
  local ikey = P .. 'in:' .. inbox
  redis.call('RPUSH', ikey, text(#id) .. ':' .. id .. text(#queue) .. ':' .. queue
    .. text(#body) .. ':' .. body .. '1:' .. priority .. text(#token) .. ':' .. token
    .. text(#reason) .. ':' .. reason .. read)
  redis.call('PEXPIRE', ikey, string.format('%d', math.ceil(lease * 1000)))
end
