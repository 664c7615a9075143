-- job_not_created.lua — KIE refused a createTask as a whole (429/455): the job is back
-- to queued and the attempt counted by job_creating is taken back (owner only).
-- KEYS[1] <p>:job:<jobId>   job hash
-- KEYS[2] <p>:hist:m:<minute>      history, this minute (i21, lib/history.lua)
-- KEYS[3] <p>:hist:d:<yyyymmdd>    history, this day (i21)
-- ARGV[1] now (epoch ms)
-- ARGV[2] consumer id
-- ARGV[3] epoch of its claim
-- Returns the attempts left counted, or -1 when the job is not this consumer's.
--#include history.lua
-- i21: every refusal is counted in the history counters ('refused')
hist_add(KEYS[2], KEYS[3], {'refused'})
local o = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'attempts')
if o[1] ~= ARGV[2] or o[2] ~= ARGV[3] then return -1 end
local n = (tonumber(o[3] or '0') or 0) - 1
redis.call('HSET', KEYS[1], 'state', 'queued', 'updatedAt', ARGV[1], 'attempts', n)
return n
