-- record_task.lua — records a created task on its job and creates the task record;
-- with ARGV[9] 'h' it also hands the task to the pollers and releases the consumer's
-- copy and ownership in the same step. Not fenced: whoever holds a paid task id records
-- it. The job's first task becomes its task; a different one is recorded as a
-- duplicate of it (duplicateOf) and collected too. A task recorded on a job that was
-- dead-lettered meanwhile (uncertain, then policy dead) becomes its task too — so a dead
-- retry is refused — but the job stays dead: the task is collected without a job event
-- (finalize.lua). A recorded task ends the job's mayHaveTask mark. The task record's
-- pending metadata is ARGV[6] (an adoption rebuilds it from the job's descriptor, raw),
-- or the job's `pending` when the caller has none (a job hash written before pending was
-- given up). A task its job has already finalized (state completed or failed, taskId this
-- task: its task hash is gone, finalize.lua) is not recorded again: 'same', nothing
-- written but the hand-off's release of the copy and ownership.
-- KEYS[1] <p>:job:<jobId>          job hash
-- KEYS[2] <p>:task:<taskId>        task hash
-- KEYS[3] <p>:uncertain            zset of uncertain job ids
-- KEYS[4] <p>:polling              list of task ids to poll
-- KEYS[5] <p>:stats                hash of counters
-- KEYS[6] <p>:poll:due             zset of task ids being polled (used with 'h' and '1')
-- KEYS[7] <p>:processing:<cid>     the consumer's processing list (used with 'h')
-- KEYS[8] <p>:recoveries           hash sha1(descriptor) -> count (used with 'h')
-- KEYS[9] <p>:hist:m:<minute>      history, this minute (i21, lib/history.lua)
-- KEYS[10] <p>:hist:d:<yyyymmdd>   history, this day (i21)
-- ARGV[1] taskId
-- ARGV[2] jobId
-- ARGV[3] now (epoch ms)
-- ARGV[4] job type
-- ARGV[5] replyTo ('' for none)
-- ARGV[6] the pending metadata record (JSON; '' to take the job's pending)
-- ARGV[7] the job's meta (JSON, '' for none)
-- ARGV[8] attempts
-- ARGV[9] '0': record only; '1': also ZADD NX it into KEYS[6] at ARGV[10] (an adoption);
--         'h': hand off: ZADD NX it into KEYS[6] at ARGV[10], LREM ARGV[11] from KEYS[7]
--         (and forget its recovery count), give up ownership when owner is ARGV[12]
-- ARGV[10] first poll time (epoch ms; with 'h' and '1')
-- ARGV[11] the claimed descriptor (with 'h')
-- ARGV[12] consumer id (with 'h')
-- ARGV[13] the events channel (<p>:events; i19: job.started is published there)
-- Returns 'recorded' | 'same' | 'duplicate' | 'dead' (recorded on a dead job: collected
-- without an event).
--#include history.lua
local j = redis.call('HMGET', KEYS[1], 'taskId', 'state', 'owner', 'pending', 'queuedAt')
local cur = j[1]
local outcome = 'recorded'
if cur and cur ~= '' and cur ~= ARGV[1] then outcome = 'duplicate'
elseif cur == ARGV[1] then outcome = 'same' end
local hand = ARGV[9] == 'h'
local final = outcome == 'same' and (j[2] == 'completed' or j[2] == 'failed')
local drop = {}
if hand and j[3] == ARGV[12] then drop = {'owner', 'lease'} end
if outcome == 'recorded' and j[2] == 'dead' then
  redis.call('HSET', KEYS[1], 'taskId', ARGV[1], 'updatedAt', ARGV[3])
  drop[#drop + 1] = 'mayHaveTask'
  redis.call('HINCRBY', KEYS[5], 'tasks_created', 1)
elseif outcome == 'recorded' then
  redis.call('HSET', KEYS[1], 'taskId', ARGV[1], 'state', 'polling', 'updatedAt', ARGV[3],
    'startedAt', ARGV[3])
  -- i19: job.started (the task exists: an app's "queued" becomes "generating"), published
  -- on <p>:events only: <p>:results and replyTo lists keep one completion event per job
  if ARGV[13] and ARGV[13] ~= '' then
    local qa = j[5]
    local ev = string.format(
      [[{"v":1,"event":"job.started","status":"started","jobId":%s,"taskId":%s,]] ..
      [["type":%s,"attempts":%d,"queuedAt":%s,"startedAt":%s,"finishedAt":null,"meta":%s}]],
      cjson.encode(ARGV[2]), cjson.encode(ARGV[1]), cjson.encode(ARGV[4]),
      tonumber(ARGV[8]) or 0, qa or 'null', ARGV[3], ARGV[7] ~= '' and ARGV[7] or 'null')
    redis.call('PUBLISH', ARGV[13], ev)
  end
  drop[#drop + 1] = 'mayHaveTask'
  if j[2] == 'uncertain' then
    drop[#drop + 1] = 'uncertainUntil'
    redis.call('ZREM', KEYS[3], ARGV[2])
  end
  redis.call('HINCRBY', KEYS[5], 'tasks_created', 1)
end
if #drop > 0 then redis.call('HDEL', KEYS[1], unpack(drop)) end
-- i21: the history counters: a task created, and its job's wait (queued -> task)
if outcome == 'recorded' then
  hist_add(KEYS[9], KEYS[10], hist_fields('created', 'wait', j[5], ARGV[3]))
end
-- the task hash may exist without its job (a callback that came first read it)
local t = redis.call('HMGET', KEYS[2], 'jobId', 'createdAt')
if not t[1] and not final then
  local rec = ARGV[6]
  if rec == '' and j[4] then rec = j[4] end
  local f = {'jobId', ARGV[2], 'type', ARGV[4], 'replyTo', ARGV[5], 'record', rec,
    'jobMeta', ARGV[7], 'attempts', ARGV[8]}
  if not t[2] then f[#f + 1] = 'createdAt' f[#f + 1] = ARGV[3] end
  if outcome == 'duplicate' then
    f[#f + 1] = 'duplicateOf' f[#f + 1] = cur
    redis.call('HINCRBY', KEYS[5], 'duplicate_tasks', 1)
  end
  redis.call('HSET', KEYS[2], unpack(f))
end
if hand then
  if not final then redis.call('ZADD', KEYS[6], 'NX', ARGV[10], ARGV[1]) end
  if redis.call('LREM', KEYS[7], 1, ARGV[11]) == 1 then
    redis.call('HDEL', KEYS[8], redis.sha1hex(ARGV[11]))
  end
elseif ARGV[9] == '1' and not final then
  redis.call('ZADD', KEYS[6], 'NX', ARGV[10], ARGV[1])
elseif outcome == 'duplicate' then
  redis.call('LPUSH', KEYS[4], ARGV[1])
end
-- pushed by whoever did not create it (a callback): an adoption
if ARGV[9] == '1' and outcome == 'recorded' then
  redis.call('HINCRBY', KEYS[5], 'adopted', 1)
end
if outcome == 'recorded' and j[2] == 'dead' then return 'dead' end
return outcome
