-- notify_many: hand values just written to the clients waiting on their keys, as a
-- fenced write does (redis_plain_writes.py writes them with plain commands first).
--
-- ARGV[3], ARGV[4] ... in pairs: key [string], value [bytes]
-- Keys touched, for each key:
--   P.."n:"..key   [set]   EXISTS (one variadic call for all); SMEMBERS, DEL: its waiters
--   P.."wl:"..*    [list]  RPUSH "<#key>:<key><value>", PEXPIRE: each waiter's list
-- Returns 1.
if existing({'n:'}, 3, 2) > 0 then
  for i = 3, #ARGV, 2 do
    notify(ARGV[i], ARGV[i + 1])
  end
end
return 1
