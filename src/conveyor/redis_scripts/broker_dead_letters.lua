-- dead_letters: the oldest dead letters first.
--
-- ARGV[3]  limit [integer > 0]
-- Keys touched (read only):
--   P.."dead"      [zset]  ZRANGE 0 limit-1 (oldest failed_at first)
--   P.."dl:"..id   [hash]  HMGET q b p r f e
-- Returns a flat list: id, queue, body, priority, reason, failed_at, re-sends, id, ...
local out = {}
for _, id in ipairs(redis.call('ZRANGE', P .. 'dead', 0, tonumber(ARGV[3]) - 1)) do
  local fields = redis.call('HMGET', P .. 'dl:' .. id, 'q', 'b', 'p', 'r', 'f', 'e')
  if fields[1] then
    out[#out + 1] = id
    for j = 1, 5 do
      out[#out + 1] = fields[j]
    end
    out[#out + 1] = fields[6] or '0'
  end
end
return out
