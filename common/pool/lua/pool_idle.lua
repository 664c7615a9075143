#!lua flags=no-writes
-- pool_idle.lua — counts what the pool still has to do: the queue, the jobs scheduled,
-- polling, poll:due,
-- delayed, uncertain jobs, KIE's callbacks (for a worker that consumes them) and every
-- consumer's processing list. The C side lists <p>:workers first and
-- passes their processing lists; the set is re-read here, and a consumer that joined
-- meanwhile makes the answer -1 (list again), so no processing list is missed.
-- KEYS[1] <p>:queue
-- KEYS[2] <p>:polling
-- KEYS[3] <p>:poll:due
-- KEYS[4] <p>:delayed
-- KEYS[5] <p>:workers                   set of consumer ids
-- KEYS[6] <p>:uncertain                 sorted set
-- KEYS[7] <p>:callbacks                 list
-- KEYS[8] <p>:sched:<acct>:items        hash: every job queued, delayed or parked
-- KEYS[9..] <p>:processing:<cid>        one per consumer id of ARGV[2..], in order
-- ARGV[1] "1": count <p>:callbacks (this worker consumes them), else "0"
-- ARGV[2..] the consumer ids listed
-- Returns the number of items left (0: idle), or -1 when <p>:workers changed.
local listed = {}
for i = 2, #ARGV do listed[ARGV[i]] = true end
for _, w in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  if not listed[w] then return -1 end
end
local n = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) +
  redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]) + redis.call('ZCARD', KEYS[6])
if ARGV[1] == '1' then n = n + redis.call('LLEN', KEYS[7]) end
n = n + redis.call('HLEN', KEYS[8])
for i = 2, #ARGV do n = n + redis.call('LLEN', KEYS[7 + i]) end
return n
