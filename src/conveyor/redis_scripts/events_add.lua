-- events_add: append one packet of events (brokers/base.py EventPacket) to the broker's
-- event stream, and trim whole packets while the rest still hold N events.
--
-- Keys touched:
--   ARGV[1].."events"  [stream]  XADD one entry: n (events in the packet), t (events in
--                                the stream's history up to and including it), p (the
--                                packet); XRANGE, XTRIM MINID to drop the oldest packets
-- ARGV[1]  the broker's key prefix
-- ARGV[2]  N, the events to keep at least
-- ARGV[3]  "" to let Redis number the entry by its own clock; otherwise a time in
--          milliseconds (an injected clock's, in tests): the entry is numbered from it,
--          never below the newest entry's number
-- ARGV[4]  how many events the packet holds
-- ARGV[5]  the packet
-- Returns the entry's id.
local key = ARGV[1] .. 'events'
local keep, count = tonumber(ARGV[2]), tonumber(ARGV[4])
local id = '*'
local total = count
local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
if last then
  total = total + tonumber(last[2][4])
end
if ARGV[3] ~= '' then
  local ms = tonumber(ARGV[3])
  if last then
    local newest = tonumber(string.match(last[1], '^(%d+)-'))
    if newest > ms then ms = newest end
  end
  id = string.format('%d-*', ms)
end
local added = redis.call('XADD', key, id, 'n', count, 't', total, 'p', ARGV[5])
-- the first entry to keep: the oldest whose events, with those after it, are still needed
-- (none to drop while the stream holds fewer than N). XRANGE returns the packets too, so
-- it reads a few entries at a time: usually the oldest one or two are all that go.
local floor = total - keep
local start = '-'
while floor > 0 do
  local entries = redis.call('XRANGE', key, start, '+', 'COUNT', 4)
  local first = nil
  for _, entry in ipairs(entries) do
    if tonumber(entry[2][4]) > floor then
      first = entry[1]
      break
    end
  end
  if first then
    redis.call('XTRIM', key, 'MINID', first)
    break
  end
  if #entries < 4 then break end
  start = '(' .. entries[#entries][1]
end
return added
