-- task_get.lua — reads a task record, giving it a createdAt when it has none (a task
-- first seen by a poller or callback), and with ARGV[2] '1' counts one poll.
-- KEYS[1] <p>:task:<taskId>        task hash
-- ARGV[1] now (epoch ms)
-- ARGV[2] '1' count a poll, '0' read only
-- Returns {jobId, type, replyTo, createdAt, polls, attempts, finalizedAt, record,
-- jobMeta, duplicateOf}, each false when absent.
local f = redis.call('HMGET', KEYS[1], 'jobId', 'type', 'replyTo', 'createdAt', 'polls',
  'attempts', 'finalizedAt', 'record', 'jobMeta', 'duplicateOf')
if not f[4] then
  redis.call('HSET', KEYS[1], 'createdAt', ARGV[1])
  f[4] = ARGV[1]
end
if ARGV[2] == '1' then f[5] = tostring(redis.call('HINCRBY', KEYS[1], 'polls', 1)) end
return f
