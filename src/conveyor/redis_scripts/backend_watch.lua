-- watch: before blocking on its waiter list, a client registers for a key and reads it in
-- the same atomic step, so no write can fall between its read and its registration.
--
-- ARGV[3]  key [string]
-- ARGV[4]  list [string]            the client's waiter list (P.."wl:"..uuid)
-- ARGV[5]  ttl [milliseconds]       how long the registration lives (the client's wait)
-- Keys touched:
--   ARGV[4]        [list]    DEL: nothing stale is left in it
--   P.."n:"..key   [set]     SADD the list name, PEXPIRE
--   P.."waiting"   [string]  PTTL, SET PX: lives as long as the longest registration
--   P.."v:"..key   [string]  GET
-- Returns the stored "<fence>:<value>" string, or nil.
local waiting = P .. 'n:' .. ARGV[3]
redis.call('DEL', ARGV[4])
redis.call('SADD', waiting, ARGV[4])
redis.call('PEXPIRE', waiting, tonumber(ARGV[5]))
registered(tonumber(ARGV[5]))
return redis.call('GET', P .. 'v:' .. ARGV[3])
