-- ack: delete a finished message, only while the caller's token is the current one.
--
-- ARGV[3]  id [string]
-- ARGV[4]  token [string]   the lease token of the delivery being acknowledged
-- Keys touched:
--   P.."m:"..id  [hash]  HMGET t q; DEL when the token matches
--   P.."l:"..Q   [zset]  ZREM id (Q is the queue stored in the message)
-- Returns 1 when deleted, 0 (and nothing changed) when the token is stale or the id unknown.
local id = ARGV[3]
local key = P .. 'm:' .. id
local fields = redis.call('HMGET', key, 't', 'q')
if fields[1] ~= ARGV[4] then
  return 0
end
redis.call('DEL', key)
redis.call('ZREM', P .. 'l:' .. fields[2], id)
return 1
