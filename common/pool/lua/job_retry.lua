-- job_retry.lua — releases the claimed descriptor into the delayed set until its retry
-- is due (owner only); the job waits in retry_wait.
-- KEYS[1] <p>:processing:<cid>     the consumer's processing list
-- KEYS[2] <p>:delayed              zset of descriptors waiting for a retry
-- KEYS[3] <p>:job:<jobId>          job hash
-- KEYS[4] <p>:recoveries           hash sha1(descriptor) -> count
-- KEYS[5] <p>:stats                hash of counters
-- ARGV[1] the claimed descriptor
-- ARGV[2] due time (epoch ms)
-- ARGV[3] the error that is retried
-- ARGV[4] now (epoch ms)
-- ARGV[5] consumer id
-- ARGV[6] epoch of its claim
-- Returns 1, 0 when the copy was not held any more, -1 when the copy was released but
-- the job is another consumer's (fenced).
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[4], redis.sha1hex(ARGV[1]))
local o = redis.call('HMGET', KEYS[3], 'owner', 'epoch')
if o[1] ~= ARGV[5] or o[2] ~= ARGV[6] then return -1 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], 'state', 'retry_wait', 'error', ARGV[3], 'updatedAt', ARGV[4],
  'retryAt', ARGV[2])
redis.call('HDEL', KEYS[3], 'owner', 'lease')
redis.call('HINCRBY', KEYS[5], 'retries', 1)
return 1
