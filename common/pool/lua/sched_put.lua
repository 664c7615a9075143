-- sched_put.lua — a runner gives a picked job back to the scheduling structure, in one
-- step with releasing its copy: 'front' (a pause met before createTask, a stop) puts it
-- back at its old place (its tag), 'unattempt' does too and takes the attempt back (an
-- account pause after createTask was refused), 'retry' delays it until its retry is due
-- (state retry_wait; it gets a new tag when due). The group's in-flight count is given
-- back. Fenced when the runner owns the job (ARGV[4] not '0').
-- KEYS[1] <p>:processing:<cid>           the runner's processing list
-- KEYS[2] <p>:job:<jobId>                job hash
-- KEYS[3] <p>:sched:<acct>:ready         zset jobId -> (9 - priority) * 1e12 + tag
-- KEYS[4] <p>:sched:<acct>:delayed       zset jobId -> due (epoch ms)
-- KEYS[5] <p>:sched:<acct>:items         hash jobId -> "prio\tgroup\tqueuedAt\ttag\tdescriptor"
-- KEYS[6] <p>:sched:<acct>:state         hash n<p> (ready per priority), ...
-- KEYS[7] <p>:sched:<acct>:gcount        hash group -> jobs queued or delayed
-- KEYS[8] <p>:sched:<acct>:inflight      hash group -> jobs between claim and final state
-- KEYS[9] <p>:stats                      hash of counters
-- KEYS[10] <p>:sched:<acct>:wake         list: a token wakes an idle runner
-- KEYS[11] <p>:recoveries                hash sha1(descriptor) -> count
-- KEYS[12] <p>:sched:<acct>:overBudget   zset jobId -> its ready score (i20-wire)
-- KEYS[13] <p>:sched:<acct>:overBudgetEst hash jobId -> "group\testimate" (i20-wire)
-- ARGV[1] the claimed descriptor
-- ARGV[2] jobId
-- ARGV[3] consumer id
-- ARGV[4] epoch of its claim ('0': the runner does not own the job)
-- ARGV[5] 'front' | 'unattempt' | 'retry' | 'over_budget' (the pick said its estimate
--         would pass a budget: it waits in KEYS[12], state over_budget, until
--         budget_unpark.lua finds room)
-- ARGV[6] due (epoch ms; with 'retry')
-- ARGV[7] the error retried ('' for none)
-- ARGV[8] now (epoch ms)
-- ARGV[9] priority
-- ARGV[10] group
-- ARGV[11] queuedAt (epoch ms)
-- ARGV[12] tag
-- ARGV[13] over_budget: which budget (the job hash's budgetWait)
-- ARGV[14] over_budget: the job's estimate
-- Returns 1, 0 when the copy was not held any more, -1 when the copy was released but
-- the job is another consumer's (fenced).
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
local o = redis.call('HMGET', KEYS[2], 'owner', 'epoch', 'attempts', 'inflight')
if ARGV[4] ~= '0' and (o[1] ~= ARGV[3] or o[2] ~= ARGV[4]) then return -1 end
local id, p, g, mode = ARGV[2], tonumber(ARGV[9]), ARGV[10], ARGV[5]
if o[4] then
  redis.call('HDEL', KEYS[2], 'inflight')
  if redis.call('HINCRBY', KEYS[8], o[4], -1) <= 0 then redis.call('HDEL', KEYS[8], o[4]) end
end
local tag = ARGV[12]
local f = {'updatedAt', ARGV[8]}
if mode == 'retry' then
  tag = ''
  redis.call('ZADD', KEYS[4], ARGV[6], id)
  f[#f + 1] = 'state' f[#f + 1] = 'retry_wait'
  f[#f + 1] = 'error' f[#f + 1] = ARGV[7]
  f[#f + 1] = 'retryAt' f[#f + 1] = ARGV[6]
  redis.call('HDEL', KEYS[11], redis.sha1hex(ARGV[1]))
  redis.call('HINCRBY', KEYS[9], 'retries', 1)
elseif mode == 'over_budget' then
  -- >>> i20-wire: parked until its budget has room (budget_unpark.lua)
  redis.call('ZADD', KEYS[12], (9 - p) * 1e12 + tonumber(tag), id)
  redis.call('HSET', KEYS[13], id, g .. '\t' .. (ARGV[14] or '0'))
  f[#f + 1] = 'state' f[#f + 1] = 'over_budget'
  f[#f + 1] = 'budgetWait' f[#f + 1] = ARGV[13] or ''
  -- <<< i20-wire
else
  redis.call('ZADD', KEYS[3], (9 - p) * 1e12 + tonumber(tag), id)
  redis.call('HINCRBY', KEYS[6], 'n' .. p, 1)
  f[#f + 1] = 'state' f[#f + 1] = 'queued'
  if mode == 'unattempt' then
    f[#f + 1] = 'attempts' f[#f + 1] = (tonumber(o[3] or '0') or 0) - 1
  end
  if redis.call('LLEN', KEYS[10]) == 0 then redis.call('LPUSH', KEYS[10], '1') end
end
redis.call('HSET', KEYS[5], id, p .. '\t' .. g .. '\t' .. ARGV[11] .. '\t' .. tag .. '\t' ..
  ARGV[1])
redis.call('HINCRBY', KEYS[7], g, 1)
redis.call('HSET', KEYS[2], unpack(f))
redis.call('HDEL', KEYS[2], 'owner', 'lease')
return 1
