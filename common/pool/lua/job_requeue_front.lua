-- job_requeue_front.lua — an account pause: the claimed descriptor goes back to the
-- consuming end of the queue and the attempt is taken back (owner only).
-- KEYS[1] <p>:processing:<cid>     the consumer's processing list
-- KEYS[2] <p>:queue                the job queue
-- KEYS[3] <p>:job:<jobId>          job hash
-- ARGV[1] the claimed descriptor
-- ARGV[2] now (epoch ms)
-- ARGV[3] consumer id
-- ARGV[4] epoch of its claim
-- Returns 1, 0 when the copy was not held any more, -1 when fenced (copy released).
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
local o = redis.call('HMGET', KEYS[3], 'owner', 'epoch', 'attempts')
if o[1] ~= ARGV[3] or o[2] ~= ARGV[4] then return -1 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], 'state', 'queued', 'updatedAt', ARGV[2],
  'attempts', (tonumber(o[3] or '0') or 0) - 1)
redis.call('HDEL', KEYS[3], 'owner', 'lease')
return 1
