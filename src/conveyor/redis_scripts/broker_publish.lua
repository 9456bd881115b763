-- publish: store messages; an id that is live already (ready, delayed or reserved) is ignored.
-- A message that is ready now goes straight to a sleeping worker when one is registered
-- for its queue (see broker_reserve.lua): it is leased to that worker here, in the same
-- atomic step, and pushed to the worker's inbox, which the worker blocks on. The worker
-- then runs it without another round trip.
--
-- ARGV[3..]  groups of five, one per message:
--              id [string], queue [string], priority [0-9, clamped], eta [unix seconds or
--              ""], body
-- Keys touched (see the prelude for the layout):
--   P.."seq"        [string] INCRBY: sequence numbers for the ready scores
--   P.."b"          [hash]   HSETNX id (priority digit .. body): stores the message unless
--                            its id is live (the duplicate check)
--   P.."m:"..id     [hash]   HSET p q n s t, only for a message handed to a sleeping worker
--   P.."q:"..queue  [zset]   ZADD when the eta is absent or not after now
--   P.."d:"..queue  [zset]   ZADD score eta when the eta is after now
--   P.."queues"     [set]    SADD the queue name
--   P.."w:"..queue  [list]   one wake token, so a sleeping worker re-reads (also for
--                            delayed messages: its sleep may have to end sooner)
--   P.."idle:"..queue [zset] ZRANGE 0 0, ZREM: registrations of sleeping workers
--   P.."reg:"..reg  [string] GET, DEL: a registration, used once (see broker_reserve.lua)
--   P.."l:"..queue  [zset]   ZADD id, score now + lease (a handed message)
--   P.."in:"..inbox [list]   RPUSH, PEXPIRE: a handed message, for the worker (inbox_item)
--   revoked..task   [string] GET (read only): the revocation a registration asks for
-- Returns the count of messages stored.
local count = (#ARGV - 2) / 5
if count < 1 then
  return 0
end
local seq = redis.call('INCRBY', P .. 'seq', count) - count
local bodies = P .. 'b'
local listed, woken, sleeping = {}, {}, {}
local adds = {} -- zset key -> {score, id, score, id, ...}: one ZADD per key (and 500 pairs)
local function add(zkey, score, id)
  local pairs_ = adds[zkey]
  if not pairs_ then
    pairs_ = {}
    adds[zkey] = pairs_
  end
  pairs_[#pairs_ + 1] = score
  pairs_[#pairs_ + 1] = id
end
local stored = 0
for i = 3, #ARGV, 5 do
  local id, queue, eta = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  local priority = tostring(digit(ARGV[i + 2]))
  if redis.call('HSETNX', bodies, id, priority .. ARGV[i + 4]) == 1 then
    stored = stored + 1
    local handed = false
    if eta ~= '' and tonumber(eta) > NOW then
      add(P .. 'd:' .. queue, eta, id)
    else
      seq = seq + 1
      local score = ready_score(priority, seq)
      if sleeping[queue] ~= false then
        local reg = claim(queue)
        sleeping[queue] = reg ~= nil
        if reg then
          hand(reg, id, queue, priority, ARGV[i + 4], score)
          handed = true
        end
      end
      if not handed then
        add(P .. 'q:' .. queue, score, id)
      end
    end
    if not listed[queue] then
      listed[queue] = true
      redis.call('SADD', P .. 'queues', queue)
    end
    if not handed and not woken[queue] then
      woken[queue] = true
      wake(queue)
    end
  end
end
for zkey, pairs_ in pairs(adds) do
  for from = 1, #pairs_, 1000 do
    redis.call('ZADD', zkey, unpack(pairs_, from, math.min(from + 999, #pairs_)))
  end
end
return stored
