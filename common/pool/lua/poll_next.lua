-- poll_next.lua — a poller's one step: moves up to ARGV[1] task ids pushed onto
-- <p>:polling (by producers, or a job's duplicate task) into <p>:poll:due, then claims
-- the earliest task due by ARGV[3], leasing it until ARGV[4] (a dead poller's task comes
-- due again then), and reads the claimed task's hash in the same step (as task_get.lua,
-- counting a poll). A task id moved from <p>:polling gets its hash here (createdAt) if it
-- has none, so every task being polled has one: a claimed id without a hash is a job's
-- own task finalized meanwhile (finalize.lua deleted its hash) that a race put back —
-- it is dropped, never polled as a task nobody owns.
-- KEYS[1] <p>:polling              list of task ids to poll
-- KEYS[2] <p>:poll:due             zset task id -> next poll (or lease end), epoch ms
-- KEYS[3] <p>:task:                prefix of the task hashes: the claimed task's is
--                                  KEYS[3] .. its id (a key named by data, in the prefix's
--                                  slot: docs/protocol.md section 2)
-- ARGV[1] the most ids to move
-- ARGV[2] first poll time of a moved id (epoch ms)
-- ARGV[3] now (epoch ms)
-- ARGV[4] lease end (epoch ms)
-- Returns {taskId, next, jobId, type, replyTo, createdAt, polls, attempts, finalizedAt,
-- record, jobMeta, duplicateOf, copying} for a claimed task (task_get.lua's fields, false
-- when absent; next: the due time of the task after it, -1 when none — another poller
-- may take it), {false, due} when the earliest is due later, {false, -1} when there is
-- nothing to poll; {false, now} when it dropped such an id (look again at once).
local ids = redis.call('RPOP', KEYS[1], tonumber(ARGV[1]))
if ids then
  local z = {}
  for _, id in ipairs(ids) do
    z[#z + 1] = ARGV[2] z[#z + 1] = id
    local task = KEYS[3] .. id
    redis.call('HSETNX', task, 'createdAt', ARGV[3])
  end
  redis.call('ZADD', KEYS[2], 'NX', unpack(z))
end
local e = redis.call('ZRANGE', KEYS[2], 0, 1, 'WITHSCORES')
if #e == 0 then return {false, -1} end
if tonumber(e[2]) > tonumber(ARGV[3]) then return {false, e[2]} end
local id = e[1]
local task = KEYS[3] .. id
local f = redis.call('HMGET', task, 'jobId', 'type', 'replyTo', 'createdAt', 'polls',
  'attempts', 'finalizedAt', 'record', 'jobMeta', 'duplicateOf', 'copyResult')
if not f[4] then
  redis.call('ZREM', KEYS[2], id)
  return {false, ARGV[3]}
end
redis.call('ZADD', KEYS[2], 'XX', ARGV[4], id)
if f[11] then f[11] = '1' end
f[5] = tostring(redis.call('HINCRBY', task, 'polls', 1))
local out = {id, e[4] or -1}
for i = 1, 11 do out[#out + 1] = f[i] end
return out
