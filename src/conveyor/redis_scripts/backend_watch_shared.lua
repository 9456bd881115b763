-- watch_shared: backend_watch.lua for a waiter list that several waits share (the async
-- client keeps one list per event loop, read by one BLPOP): it registers the list for a
-- key and reads the key in one atomic step, but leaves the list as it is, since it may
-- hold pushes for the other keys waited for on it.
--
-- ARGV[3]  key [string]
-- ARGV[4]  list [string]            the shared waiter list (P.."wl:"..uuid)
-- ARGV[5]  ttl [milliseconds]       how long the registration lives (the client's wait)
-- Keys touched:
--   P.."n:"..key   [set]     SADD the list name, PEXPIRE
--   P.."waiting"   [string]  PTTL, SET PX: lives as long as the longest registration
--   P.."v:"..key   [string]  GET
-- Returns the stored "<fence>:<value>" string, or nil.
local waiting = P .. 'n:' .. ARGV[3]
redis.call('SADD', waiting, ARGV[4])
redis.call('PEXPIRE', waiting, tonumber(ARGV[5]))
registered(tonumber(ARGV[5]))
return redis.call('GET', P .. 'v:' .. ARGV[3])
