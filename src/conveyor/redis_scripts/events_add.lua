-- events_add: append events to the broker's event stream, keeping about the newest N.
--
-- Keys touched:
--   ARGV[1].."events"  [stream]  XADD one entry per event, field "e" the encoded event;
--                                MAXLEN ~ N trims whole stream nodes (approximate, cheap)
-- ARGV[1]  the broker's key prefix
-- ARGV[2]  N, the length to keep
-- ARGV[3]  "" to let Redis number the entries by its own clock; otherwise a time in
--          milliseconds (an injected clock's, in tests): entries are numbered from it,
--          never below the newest entry's number
-- ARGV[4..] the encoded events, in order
local key = ARGV[1] .. 'events'
local id = '*'
if ARGV[3] ~= '' then
  local ms = tonumber(ARGV[3])
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
  if last then
    local newest = tonumber(string.match(last[1], '^(%d+)-'))
    if newest > ms then ms = newest end
  end
  id = string.format('%d-*', ms)
end
for i = 4, #ARGV do
  redis.call('XADD', key, 'MAXLEN', '~', ARGV[2], id, 'e', ARGV[i])
end
return #ARGV - 3
