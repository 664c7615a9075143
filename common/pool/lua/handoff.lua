-- handoff.lua — hands a recorded task to the pollers and releases the consumer's copy of
-- its descriptor (if it still has it) and the job's ownership (if still its). The task
-- goes to the pollers whether or not the copy is still held (a fenced runner's task is
-- collected too). (A task recorded now is handed off by record_task.lua in one step.)
-- A task its job has finalized meanwhile (state completed or failed, taskId this task:
-- its hash is gone) is not put back.
-- KEYS[1] <p>:poll:due             zset of task ids being polled
-- KEYS[2] <p>:processing:<cid>     the consumer's processing list
-- KEYS[3] <p>:recoveries           hash sha1(descriptor) -> count
-- KEYS[4] <p>:job:<jobId>          job hash
-- ARGV[1] taskId
-- ARGV[2] the claimed descriptor
-- ARGV[3] consumer id
-- ARGV[4] first poll time (epoch ms)
-- Returns 1.
local j = redis.call('HMGET', KEYS[4], 'state', 'taskId', 'owner')
if not ((j[1] == 'completed' or j[1] == 'failed') and j[2] == ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'NX', ARGV[4], ARGV[1])
end
if redis.call('LREM', KEYS[2], 1, ARGV[2]) == 1 then
  redis.call('HDEL', KEYS[3], redis.sha1hex(ARGV[2]))
end
if j[3] == ARGV[3] then
  redis.call('HDEL', KEYS[4], 'owner', 'lease')
end
return 1
