-- callback_lookup.lua — the callback consumer's first look at an entry, before anything
-- costs a KIE call: whether a job has recorded the entry's task, and, when none has,
-- whether the job its URL names exists. An entry for a task no job has recorded that
-- names no job, or a job that does not exist, cannot be adopted: it is counted in
-- callbacks_unowned here and dropped, so a flood of forged entries costs this one step
-- each and no recordInfo. Nothing else is written: a task hash is never created here.
-- A job's own task finalized before has no task hash any more (finalize.lua): the job
-- hash the entry names says so (state completed or failed, taskId this task).
-- KEYS[1] <p>:task:<taskId>        task hash
-- KEYS[2] <p>:job:<jobId>          job hash of the URL's jobId (any key when ARGV[1] is '0')
-- KEYS[3] <p>:stats                hash of counters
-- ARGV[1] '1' the entry names a job (KEYS[2]), '0' it names none
-- ARGV[2] the entry's taskId
-- ARGV[3] the entry's jobId ('' for none)
-- Returns {verdict, jobId of the task or false, finalized '1'|'0'}; verdict: recorded (a
-- job recorded the task) | adopt (not recorded; the named job exists: confirm with KIE) |
-- unowned (not recorded; no such job, or none named: counted, drop it).
local t = redis.call('HMGET', KEYS[1], 'jobId', 'finalizedAt')
if t[1] then return {'recorded', t[1], t[2] and '1' or '0'} end
if ARGV[1] == '1' then
  local j = redis.call('HMGET', KEYS[2], 'state', 'taskId')
  if j[2] == ARGV[2] and (j[1] == 'completed' or j[1] == 'failed') then
    return {'recorded', ARGV[3], '1'}
  end
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'adopt', false, '0'} end
end
local ty = redis.call('TYPE', KEYS[3])['ok']
if ty == 'hash' or ty == 'none' then redis.call('HINCRBY', KEYS[3], 'callbacks_unowned', 1) end
return {'unowned', false, '0'}
