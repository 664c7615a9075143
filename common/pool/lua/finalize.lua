-- finalize.lua — finalizes a task once, whoever sees its end first: marks it finalized
-- (unless it already was), emits the completion event to <p>:results, replyTo and
-- <p>:events (emit.lua, with the job's queuedAt and startedAt), stops polling it, and sets
-- its job's state. Every key written is type-checked first (a script cannot be rolled
-- back); a replyTo key of another type is skipped. A job already dead-lettered (its task
-- adopted after the uncertain window's policy made it dead) gets no event and keeps its
-- state: the task is collected, as a duplicate is — no job.completed after a job.dead.
-- What stays after the end (docs/protocol.md section 2): a job's own task hash is
-- deleted — the record is in the store, and the job hash (final state, taskId this task)
-- is what makes a later finalization of the task a no-op; the job hash keeps only what
-- `kie job show` and a duplicate descriptor's claim read. A task without a job, a job's
-- duplicate task and a dead job's task keep a trimmed hash (jobId, duplicateOf,
-- createdAt, finalizedAt, status) for the TTL: their once-only mark.
-- KEYS[1] <p>:task:<taskId>        task hash
-- KEYS[2] <p>:job:<jobId>          job hash (any key when ARGV[6] is '0')
-- KEYS[3] <p>:results              list of completion events, newest first
-- KEYS[4] <p>:poll:due             zset of task ids being polled
-- KEYS[5] <p>:stats                hash of counters
-- KEYS[6] <p>:sched:<acct>:inflight  hash group -> jobs in flight (i19)
-- KEYS[7] <p>:hist:m:<minute>      history, this minute (i21, lib/history.lua)
-- KEYS[8] <p>:hist:d:<yyyymmdd>    history, this day (i21)
-- KEYS[9] replyTo list ('' or absent: none)
-- KEYS[10] <p>:budget:<today>          (i20-wire, the cost block below: KEYS[10..16] all
--                                      or none; none: no cost counted)
-- KEYS[11] <p>:budget:<yesterday>
-- KEYS[12] <p>:budget:group
-- KEYS[13] <p>:budget:models
-- KEYS[14] <p>:budget:open
-- KEYS[15] <p>:spend:<today>
-- KEYS[16] <p>:spend:<today>:groups
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
-- ARGV[11] the task's creditsConsumed ('' KIE did not say: the reservation's estimate
--          counts) (i20-wire, with KEYS[10..16])
-- ARGV[12] today (yyyymmdd, UTC)
-- ARGV[13] yesterday
-- ARGV[14] the task's type (when the job hash has none)
-- ARGV[15] its account's alias (when the job hash has none)
-- ARGV[16] most groups named a day (1000)
-- ARGV[17] the spend counters' TTL (s)
-- ARGV[18] jobId (its budget reservation's name; '' none)
-- Returns 0 already finalized, 1 finalized now, 3 finalized now but replyTo skipped, 4
-- finalized now without an event: the job is dead.
--#include emit.lua
--#include history.lua
--#include budget.lua
--#include spend.lua

-- the once-only mark of a task that keeps no more than that
local function task_trim(task, ttl)
  local t = redis.call('HMGET', task, 'jobId', 'duplicateOf', 'createdAt', 'finalizedAt')
  redis.call('DEL', task)
  local f = {'finalizedAt', t[4], 'status', ARGV[2]}
  if t[1] then f[#f + 1] = 'jobId' f[#f + 1] = t[1] end
  if t[2] then f[#f + 1] = 'duplicateOf' f[#f + 1] = t[2] end
  if t[3] then f[#f + 1] = 'createdAt' f[#f + 1] = t[3] end
  redis.call('HSET', task, unpack(f))
  redis.call('EXPIRE', task, ttl)
end

need(KEYS[3], 'list') need(KEYS[4], 'zset') need(KEYS[5], 'hash')
local job = ARGV[6] == '1'
-- the job hash, read once (a key of another type fails this read, before any write): its
-- state and task, its in-flight group, its cost labels, its times and what is kept
-- after the end
local keep = {'attempts', 'type', 'group', 'createdAt', 'queuedAt', 'startedAt'}
local K = 5 -- jv[K + i] is keep[i]
local jv = {}
if job then
  jv = redis.call('HMGET', KEYS[2], 'state', 'taskId', 'inflight', 'account', 'model',
    unpack(keep))
  -- the job's own task, finalized before: its hash is gone, the job hash tells
  if (jv[1] == 'completed' or jv[1] == 'failed') and jv[2] == ARGV[7] then
    redis.call('ZREM', KEYS[4], ARGV[7])
    return 0
  end
end
local reply, skipped = KEYS[9], 0
if reply == '' then reply = nil end
if reply and not keytype_ok(reply, 'list') then reply, skipped = nil, 2 end
-- the first write: a task hash of another type fails here, before anything is written
if redis.call('HSETNX', KEYS[1], 'finalizedAt', ARGV[3]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[7])
  return 0
end
redis.call('ZREM', KEYS[4], ARGV[7])
-- >>> i20-wire: the task's cost, once: the job's budget reservation is settled with it
-- (lib/budget.lua) and it is counted in the day's spend by type, account and group
-- (lib/spend.lua). A job's duplicate task has no reservation: counted in the spend only.
if KEYS[16] then
  local credits = tonumber(ARGV[11])
  local ty, acct, grp, model = ARGV[14], ARGV[15], '', ''
  if job then
    ty, acct, grp, model = jv[K + 2] or ty, jv[4] or acct, jv[K + 3] or '', jv[5] or ''
    credits = budget_settle(KEYS[2], KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14],
      ARGV[18] or '', ARGV[12], ARGV[13], grp, model, credits)
  end
  spend_add(KEYS[15], KEYS[16], credits or 0, ty, acct, grp, tonumber(ARGV[16]) or 1000,
    tonumber(ARGV[17]) or 7776000)
  hist_add_credits(KEYS[7], KEYS[8], credits) -- i21: credits per minute and per day
end
-- <<< i20-wire
if job then
  -- the job's group gives back its in-flight slot (per-group caps, pool/sched.h)
  if jv[3] then
    if redis.call('HINCRBY', KEYS[6], jv[3], -1) <= 0 then redis.call('HDEL', KEYS[6], jv[3]) end
  end
  if jv[1] == 'dead' then
    task_trim(KEYS[1], ARGV[8])
    redis.call('HDEL', KEYS[2], 'pending', 'inflight')
    redis.call('HINCRBY', KEYS[5], 'dead_tasks_collected', 1)
    return 4
  end
  redis.call('DEL', KEYS[1])
  -- written anew rather than trimmed: a hash that once held a long value (raw, jobMeta)
  -- stays in Redis's larger encoding; a fresh one of short values is a listpack
  local f = {'state', ARGV[2], 'taskId', ARGV[7], 'updatedAt', ARGV[3], 'finishedAt', ARGV[3]}
  for i, name in ipairs(keep) do
    local v = jv[K + i]
    if v and v ~= '' then f[#f + 1] = name f[#f + 1] = v end
  end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], unpack(f))
  redis.call('EXPIRE', KEYS[2], ARGV[8])
else
  task_trim(KEYS[1], ARGV[8])
end
if ARGV[1] ~= '' then
  local ev = ARGV[1]
  if job then ev = emit_times_of(ev, jv[K + 5], jv[K + 6]) end
  emit(KEYS[3], reply, ev, ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[9]), ARGV[10])
  redis.call('HINCRBY', KEYS[5], ARGV[2], 1)
  -- i21: the history counters: the final state, and a job's generation time
  hist_add(KEYS[7], KEYS[8], hist_fields(ARGV[2], 'gen', job and jv[K + 6] or nil, ARGV[3]))
else
  redis.call('HINCRBY', KEYS[5], 'duplicate_tasks_collected', 1)
end
return 1 + skipped
