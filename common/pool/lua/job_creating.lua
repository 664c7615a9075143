-- job_creating.lua — the owner is about to call createTask: state creating, one more
-- attempt, and the job's descriptor (raw), so that whoever records that task later — a
-- callback's adoption after this worker died, say — rebuilds its whole pending metadata
-- record from it (the prompt is the same: a pose tweak's seed comes from the job id).
-- Fenced: only while the job is still
-- this consumer's (owner and epoch), and only while the pool is not paused: a runner that
-- claimed the job before a pause (and waited for a rate-limit slot or a 429 backoff
-- since) creates nothing after it.
-- KEYS[1] <p>:job:<jobId>   job hash
-- KEYS[2] <p>:pause         pool-wide pause (string)
-- ARGV[1] now (epoch ms)
-- ARGV[2] consumer id
-- ARGV[3] epoch of its claim
-- ARGV[4] the claimed descriptor ('' for none)
-- Returns the attempt number, -1 when the job is not this consumer's any more, or -2 when
-- the pool is paused (nothing written: the runner gives the job back).
local o = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'attempts')
if o[1] ~= ARGV[2] or o[2] ~= ARGV[3] then return -1 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -2 end
local n = (tonumber(o[3] or '0') or 0) + 1
redis.call('HSET', KEYS[1], 'state', 'creating', 'updatedAt', ARGV[1], 'attempts', n)
if ARGV[4] and ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'raw', ARGV[4]) end
return n
