-- events_read: packets of the broker's event stream, oldest first.
--
-- Keys touched (read only):
--   ARGV[1].."events"  [stream]  XRANGE
-- ARGV[1]  the broker's key prefix
-- ARGV[2]  where to start: an entry id (that entry and those after it), "(" and an id
--          (after it), a millisecond time (entries numbered from it on), or "-"
-- ARGV[3]  the most packets to return
-- Returns a flat list: id, packet, id, packet, ...
local out = {}
local entries = redis.call('XRANGE', ARGV[1] .. 'events', ARGV[2], '+', 'COUNT', ARGV[3])
for _, entry in ipairs(entries) do
  out[#out + 1] = entry[1]
  out[#out + 1] = entry[2][6]
end
return out
