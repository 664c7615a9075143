-- finalize.lua — finalizes a task once, whoever sees its end first: marks it finalized
-- (unless it already was), emits the completion event to <p>:results, replyTo and
-- <p>:events, stops polling it, and sets its job's state. Every key written is
-- type-checked first (a script cannot be rolled back); a replyTo key of another type is
-- skipped. A job already dead-lettered (its task adopted after the uncertain window's
-- policy made it dead) gets no event and keeps its state: the task is collected, as a
-- duplicate is — no job.completed after a job.dead. The job's pending metadata record
-- (written by job_creating.lua) is dropped: the record is in the store now.
-- KEYS[1] <p>:task:<taskId>        task hash
-- KEYS[2] <p>:job:<jobId>          job hash (any key when ARGV[6] is '0')
-- KEYS[3] <p>:results              list of completion events, newest first
-- KEYS[4] <p>:poll:due             zset of task ids being polled
-- KEYS[5] <p>:stats                hash of counters
-- KEYS[6] <p>:sched:<acct>:inflight  hash group -> jobs in flight (i19)
-- KEYS[7] replyTo list (optional)
-- ARGV[1] the completion event ('' for a job's duplicate task: no event, no job update)
-- ARGV[2] status: completed | failed
-- ARGV[3] now (epoch ms)
-- ARGV[4] the events channel (<p>:events; a channel, not a key)
-- ARGV[5] KIE_RESULTS_MAX
-- ARGV[6] '1' update the job hash, '0' not
-- ARGV[7] taskId
-- ARGV[8] TTL of finished task and job hashes (s)
-- ARGV[9] KIE_REPLY_MAX: the replyTo list keeps at most this many events
-- ARGV[10] KIE_REPLY_TTL_S: and expires this long after each push
-- Returns 0 already finalized, 1 finalized now, 3 finalized now but replyTo skipped, 4
-- finalized now without an event: the job is dead.

-- the event into the job's replyTo list, capped and expiring: nobody else trims it
local function reply_push(key, ev, max, ttl)
  if redis.call('LPUSH', key, ev) > max then redis.call('LTRIM', key, 0, max - 1) end
  redis.call('EXPIRE', key, ttl)
end
local function keytype_ok(k, want)
  local t = redis.call('TYPE', k)['ok']
  return t == want or t == 'none', t
end
local function need(k, want)
  local ok, t = keytype_ok(k, want)
  if not ok then error(k .. ' holds a ' .. t .. ', not a ' .. want) end
end
-- KEYS[1] needs no check: the first write (HSETNX) is to it
need(KEYS[3], 'list') need(KEYS[4], 'zset') need(KEYS[5], 'hash')
if ARGV[6] == '1' then need(KEYS[2], 'hash') end
local reply, skipped = KEYS[7], 0
if reply and not keytype_ok(reply, 'list') then reply, skipped = nil, 2 end
if redis.call('HSETNX', KEYS[1], 'finalizedAt', ARGV[3]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[7])
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('ZREM', KEYS[4], ARGV[7])
if ARGV[6] == '1' then
  -- i19: the job's group gives back its in-flight slot (per-group caps, sched.h)
  local ig = redis.call('HGET', KEYS[2], 'inflight')
  if ig then
    redis.call('HDEL', KEYS[2], 'inflight')
    if redis.call('HINCRBY', KEYS[6], ig, -1) <= 0 then redis.call('HDEL', KEYS[6], ig) end
  end
  if redis.call('HGET', KEYS[2], 'state') == 'dead' then
    redis.call('HDEL', KEYS[2], 'pending')
    redis.call('HINCRBY', KEYS[5], 'dead_tasks_collected', 1)
    return 4
  end
  redis.call('HSET', KEYS[2], 'state', ARGV[2], 'updatedAt', ARGV[3], 'taskId', ARGV[7])
  redis.call('HDEL', KEYS[2], 'pending')
  redis.call('EXPIRE', KEYS[2], ARGV[8])
end
if ARGV[1] ~= '' then
  local max = tonumber(ARGV[5])
  if redis.call('LPUSH', KEYS[3], ARGV[1]) > max then
    redis.call('LTRIM', KEYS[3], 0, max - 1)
  end
  if reply then reply_push(reply, ARGV[1], tonumber(ARGV[9]), ARGV[10]) end
  redis.call('PUBLISH', ARGV[4], ARGV[1])
  redis.call('HINCRBY', KEYS[5], ARGV[2], 1)
else
  redis.call('HINCRBY', KEYS[5], 'duplicate_tasks_collected', 1)
end
return 1 + skipped
