-- task_get.lua — reads a task record (read only: a hash that is not there stays so — a
-- job's own task finalized and deleted, say; the pollers' poll_next.lua reads it when it
-- claims it and gives a task first seen its createdAt).
-- KEYS[1] <p>:task:<taskId>        task hash
-- Returns {jobId, type, replyTo, createdAt, polls, attempts, finalizedAt, record,
-- jobMeta, duplicateOf, copying}, each false when absent; copying is '1' when the task's
-- success is saved for its result copies (copyResult: no recordInfo, a copy round).
local f = redis.call('HMGET', KEYS[1], 'jobId', 'type', 'replyTo', 'createdAt', 'polls',
  'attempts', 'finalizedAt', 'record', 'jobMeta', 'duplicateOf', 'copyResult')
if f[11] then f[11] = '1' end
return f
