-- task_get.lua — reads a task record, giving it a createdAt when it has none (a task
-- first seen by a poller or callback), and with ARGV[2] '1' counts one poll.
-- KEYS[1] <p>:task:<taskId>        task hash
-- ARGV[1] now (epoch ms)
-- ARGV[2] '1' count a poll, '0' read only
-- Returns {jobId, type, replyTo, createdAt, polls, attempts, finalizedAt, record,
-- jobMeta, duplicateOf, copying}, each false when absent; copying is '1' when the task's
-- success is saved for its result copies (copyResult: no recordInfo, a copy round).
local f = redis.call('HMGET', KEYS[1], 'jobId', 'type', 'replyTo', 'createdAt', 'polls',
  'attempts', 'finalizedAt', 'record', 'jobMeta', 'duplicateOf', 'copyResult')
if f[11] then f[11] = '1' end
if not f[4] then
  redis.call('HSET', KEYS[1], 'createdAt', ARGV[1])
  f[4] = ARGV[1]
end
if ARGV[2] == '1' then f[5] = tostring(redis.call('HINCRBY', KEYS[1], 'polls', 1)) end
return f
