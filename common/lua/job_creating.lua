-- job_creating.lua — the owner is about to call createTask: state creating, one more
-- attempt. Fenced: only while the job is still this consumer's (owner and epoch).
-- KEYS[1] <p>:job:<jobId>   job hash
-- ARGV[1] now (epoch ms)
-- ARGV[2] consumer id
-- ARGV[3] epoch of its claim
-- Returns the attempt number, or -1 when the job is not this consumer's any more.
local o = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'attempts')
if o[1] ~= ARGV[2] or o[2] ~= ARGV[3] then return -1 end
local n = (tonumber(o[3] or '0') or 0) + 1
redis.call('HSET', KEYS[1], 'state', 'creating', 'updatedAt', ARGV[1], 'attempts', n)
return n
