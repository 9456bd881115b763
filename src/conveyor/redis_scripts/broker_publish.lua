-- publish: store messages; an id that is live already (ready, delayed or reserved) is ignored.
-- A message that is ready now goes straight to a sleeping worker when one is registered
-- for its queue (see broker_reserve.lua): it is leased to that worker here, in the same
-- atomic step, and pushed to the worker's inbox, which the worker blocks on. The worker
-- then runs it without another round trip.
--
-- ARGV[3..]  runs of messages that share a queue, a priority and an eta, each run:
--              n [integer], queue [string], priority [0-9, clamped], eta [unix seconds or
--              ""], then n pairs: id [string], value (the priority's digit, as clamped
--              here, then the body: what P.."b" holds; the caller joins them, since a
--              string made here costs Redis a copy, a hash and its collection)
--            (a batch to one queue is one run: two arguments a message, not five)
-- Keys touched (see the prelude for the layout):
--   P.."b"          [hash]   HSETNX id value: stores the message unless its id is live (the
--                            duplicate check)
--   P.."t"          [hash]   HSET id (its state), only for a message handed to a sleeping worker
--   P.."p0:"..queue [list]   LLEN (once per queue: see behind() below); RPUSH a ready
--                            message of priority 0 (one RPUSH per list for the whole call;
--                            a lone one: RPUSHX, then RPUSH only if the list was empty)
--   P.."seq"        [string] INCRBY: sequence numbers for ready messages of priority 1-9
--   P.."q:"..queue  [zset]   ZADD a ready message of priority 1-9
--   P.."d:"..queue  [zset]   ZADD score eta when the eta is after now
--   P.."queues"     [set]    SADD the queue name (unless its list held messages)
--   P.."w:"..queue  [list]   LLEN, RPUSH: one wake token, so a sleeping worker re-reads
--                            (also for delayed messages: its sleep may have to end
--                            sooner); not when the queue's list held messages
--   P.."idle:"..queue [zset] ZPOPMIN: registrations of sleeping workers (not when the
--                            queue's list held messages)
--   P.."reg:"..reg  [string] GET, DEL: a registration, used once (see broker_reserve.lua)
--   P.."l:"..queue  [zset]   ZADD id, score now + lease (a handed message)
--   P.."in:"..inbox [list]   RPUSH, PEXPIRE: a handed message, for the worker (inbox_item)
--   revoked..task   [string] GET (read only): the revocation a registration asks for
-- Returns the count of messages stored.
if #ARGV < 3 then
  return 0
end
local bodies = P .. 'b'

-- One message (a delay()): the loop below without its tables and closures, which cost a
-- lone send more than its commands do (each table and closure is garbage to collect).
if #ARGV == 8 then
  local queue, eta, id = ARGV[4], ARGV[6], ARGV[7]
  local priority = digit_text(ARGV[5])
  local delayed = eta ~= '' and tonumber(eta) > now()
  local seq = 0
  if not delayed and priority ~= '0' then
    seq = redis.call('INCRBY', P .. 'seq', '1') - 1
  end
  local ready = list_key(queue)
  local now_ready = not delayed and priority == '0'
  local busy = not now_ready and redis.call('LLEN', ready) > 0
  if redis.call('HSETNX', bodies, id, ARGV[8]) == 0 then
    return 0
  end
  -- a list that holds messages takes it behind them, and then nobody sleeps on the queue
  -- (see behind() below): one RPUSHX does both, where LLEN and RPUSH were two calls
  if now_ready and redis.call('RPUSHX', ready, id) > 0 then
    return 1
  end
  local handed = false
  if delayed then
    redis.call('ZADD', P .. 'd:' .. queue, eta, id)
  else
    if not busy then
      local reg = claim(queue)
      if reg then
        now() -- the lease's deadline
        hand(reg, id, queue, priority, string.sub(ARGV[8], 2))
        handed = true
      end
    end
    if not handed then
      if priority == '0' then
        redis.call('RPUSH', ready, id)
      else
        redis.call('ZADD', P .. 'q:' .. queue, ready_score(priority, seq + 1), id)
      end
    end
  end
  if not busy then
    redis.call('SADD', P .. 'queues', queue)
    if not handed then
      wake(queue)
    end
  end
  return 1
end

local listed, woken, sleeping = {}, {}, {}
local pushes = {} -- key -> items: one ZADD (delayed, or priority 1-9) or RPUSH per key
local order = {} -- keys in the order first used: a batch's lists are pushed in order
local function add(key, a, b) -- b: the member after a score (delayed), or nil
  local items = pushes[key]
  if not items then
    items = {}
    pushes[key] = items
    order[#order + 1] = key
  end
  items[#items + 1] = a
  if b then
    items[#items + 1] = b
  end
end
-- Whether a queue's list of priority 0 held messages before this call (one LLEN per
-- queue). Then no worker sleeps on the queue (a worker registers only when it found its
-- queues empty) and its wake token is there, or a woken worker is about to reserve (a
-- reserve leaves one while messages remain): a send behind them is one RPUSH, with no
-- registration to claim, no wake token and no SADD (the queue is listed already).
local backlog = {}
local function behind(queue)
  local known = backlog[queue]
  if known == nil then
    known = redis.call('LLEN', list_key(queue)) > 0
    backlog[queue] = known
  end
  return known
end
local stored = 0
local run = 3
while run < #ARGV do
  local n, queue, eta = tonumber(ARGV[run]), ARGV[run + 1], ARGV[run + 3]
  local priority = digit_text(ARGV[run + 2])
  local delayed = eta ~= '' and tonumber(eta) > now()
  local seq = 0
  if not delayed and priority ~= '0' then
    seq = redis.call('INCRBY', P .. 'seq', ARGV[run]) - n
  end
  local first = run + 4
  run = first + 2 * n
  local busy = behind(queue)
  local ready = priority == '0' and list_key(queue) or P .. 'q:' .. queue
  for i = first, run - 1, 2 do
    local id, value = ARGV[i], ARGV[i + 1]
    if redis.call('HSETNX', bodies, id, value) == 1 then
      stored = stored + 1
      local handed = false
      if delayed then
        add(P .. 'd:' .. queue, eta, id)
      else
        if not busy and sleeping[queue] ~= false then
          local reg = claim(queue)
          sleeping[queue] = reg ~= nil
          if reg then
            now() -- the lease's deadline
            hand(reg, id, queue, priority, string.sub(value, 2))
            handed = true
          end
        end
        if not handed then
          if priority == '0' then
            add(ready, id)
          else
            seq = seq + 1
            add(ready, ready_score(priority, seq), id)
          end
        end
      end
      if not busy and not listed[queue] then
        listed[queue] = true
        redis.call('SADD', P .. 'queues', queue)
      end
      if not busy and not handed and not woken[queue] then
        woken[queue] = true
        wake(queue)
      end
    end
  end
end
for _, key in ipairs(order) do
  if string.sub(key, #P + 1, #P + 3) == 'p0:' then
    chunked('RPUSH', key, pushes[key])
  else
    chunked('ZADD', key, pushes[key])
  end
end
return stored
