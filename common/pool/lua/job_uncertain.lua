-- job_uncertain.lua — createTask's outcome is unknown (owner only): the descriptor moves
-- into the job hash (raw) and the job id into the uncertain set until now + window
-- (Redis's clock), where a callback, the late recording of its task, or the window's
-- end decides. mayHaveTask marks the job until a task is recorded on it: a dead letter
-- of the job says so, and `kie dead retry` refuses it without --allow-uncertain.
-- KEYS[1] <p>:processing:<cid>     the consumer's processing list
-- KEYS[2] <p>:job:<jobId>          job hash
-- KEYS[3] <p>:uncertain            zset job id -> end of its window (epoch ms)
-- KEYS[4] <p>:stats                hash of counters
-- ARGV[1] the claimed descriptor
-- ARGV[2] now (epoch ms)
-- ARGV[3] consumer id
-- ARGV[4] epoch of its claim
-- ARGV[5] window in ms
-- ARGV[6] the reason
-- ARGV[7] jobId
-- Returns 1, 0 when its task was recorded meanwhile (adopted), -1 when fenced; the copy
-- is released in every case.
local o = redis.call('HMGET', KEYS[2], 'owner', 'epoch', 'taskId')
redis.call('LREM', KEYS[1], 1, ARGV[1])
if o[1] ~= ARGV[3] or o[2] ~= ARGV[4] then return -1 end
if o[3] and o[3] ~= '' then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untl = string.format('%d', now + tonumber(ARGV[5]))
redis.call('HSET', KEYS[2], 'state', 'uncertain', 'raw', ARGV[1], 'error', ARGV[6],
  'uncertainUntil', untl, 'updatedAt', ARGV[2], 'mayHaveTask', '1')
redis.call('HDEL', KEYS[2], 'owner', 'lease')
redis.call('ZADD', KEYS[3], untl, ARGV[7])
redis.call('HINCRBY', KEYS[4], 'uncertain', 1)
return 1
