-- purge_dead_letters: delete dead letters (the ids given, or all).
--
-- ARGV[3]    mode [string]   "all", or "ids" followed by the ids
-- ARGV[4..]  ids (mode "ids")
-- Keys touched:
--   P.."dead"      [zset]  ZRANGE 0 -1 (all) or ZREM (ids); DEL (all)
--   P.."dl:"..id   [hash]  DEL
-- Returns the count deleted.
local dead = P .. 'dead'
local deleted = 0
if ARGV[3] == 'all' then
  for _, id in ipairs(redis.call('ZRANGE', dead, 0, -1)) do
    redis.call('DEL', P .. 'dl:' .. id)
    deleted = deleted + 1
  end
  redis.call('DEL', dead)
else
  for i = 4, #ARGV do
    if redis.call('ZREM', dead, ARGV[i]) == 1 then
      redis.call('DEL', P .. 'dl:' .. ARGV[i])
      deleted = deleted + 1
    end
  end
end
return deleted
