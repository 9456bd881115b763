-- events_read: a page of the broker's event stream, oldest first.
--
-- Keys touched (read only):
--   ARGV[1].."events"  [stream]  XRANGE
-- ARGV[1]  the broker's key prefix
-- ARGV[2]  where to start: "(" and an entry id (after it), or a millisecond time (entries
--          numbered from it on), or "-" (the oldest kept)
-- ARGV[3]  the most entries to return
-- ARGV[4]  "" for every entry, else bytes an entry's event must contain: the stream is
--          then searched here, a node of entries at a time, so only matches cross the wire
-- Returns a flat list: id, event, id, event, ...
local key = ARGV[1] .. 'events'
local start, limit, match = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local out = {}
if match == '' then
  for _, entry in ipairs(redis.call('XRANGE', key, start, '+', 'COUNT', limit)) do
    out[#out + 1] = entry[1]
    out[#out + 1] = entry[2][2]
  end
  return out
end
local found = 0
while found < limit do
  local entries = redis.call('XRANGE', key, start, '+', 'COUNT', 1000)
  if #entries == 0 then break end
  for _, entry in ipairs(entries) do
    if found < limit and string.find(entry[2][2], match, 1, true) then
      out[#out + 1] = entry[1]
      out[#out + 1] = entry[2][2]
      found = found + 1
    end
  end
  start = '(' .. entries[#entries][1]
end
return out
