-- accounts_prune.lua — forgets one scheduling structure's name in <p>:accounts once that
-- structure holds nothing: no job item (queued, delayed, parked or over_budget), nothing
-- over budget and nothing delayed. A worker runs it at start for each name of the set
-- that its accounts do not use (an alias taken out of KIE_ACCOUNTS_FILE); it reads the
-- set first and passes that name's keys, and this step checks them again before it
-- removes, so a structure that still holds jobs stays listed (and counted by readers).
-- KEYS[1] <p>:accounts                   set of structure names
-- KEYS[2] <p>:sched:<acct>:items         hash jobId -> item
-- KEYS[3] <p>:sched:<acct>:overBudget    zset
-- KEYS[4] <p>:sched:<acct>:delayed       zset
-- ARGV[1] <acct>
-- Returns 1 when the name was removed, 0 when it is kept (or was not there).
if redis.call('HLEN', KEYS[2]) > 0 or redis.call('ZCARD', KEYS[3]) > 0 or
   redis.call('ZCARD', KEYS[4]) > 0 then
  return 0
end
return redis.call('SREM', KEYS[1], ARGV[1])
