-- uncertain_resolve.lua — ends the window of a job still uncertain without a task:
-- ARGV[2] '1' puts its kept descriptor back at the consuming end of the queue, else it
-- goes to the dead letters with its completion event (emit.lua). Acts only while the job is still
-- uncertain without a task (the C side read it first; this re-checks).
-- KEYS[1] <p>:job:<jobId>          job hash
-- KEYS[2] <p>:uncertain            zset of uncertain job ids
-- KEYS[3] <p>:queue                the job queue
-- KEYS[4] <p>:dead                 list of dead letters
-- KEYS[5] <p>:stats                hash of counters
-- KEYS[6] <p>:results              list of completion events
-- KEYS[7] <p>:sched:<acct>:inflight  hash group -> jobs in flight (i19)
-- KEYS[8] <p>:hist:m:<minute>      history, this minute (i21, lib/history.lua)
-- KEYS[9] <p>:hist:d:<yyyymmdd>    history, this day (i21)
-- KEYS[10] replyTo list (optional)
-- ARGV[1] jobId
-- ARGV[2] '1' create again, '0' dead
-- ARGV[3] the dead-letter entry (JSON; '' with create)
-- ARGV[4] the reason
-- ARGV[5] now (epoch ms)
-- ARGV[6] TTL of a finished job hash (s)
-- ARGV[7] the completion event (with dead)
-- ARGV[8] the events channel (<p>:events; a channel, not a key)
-- ARGV[9] KIE_RESULTS_MAX
-- ARGV[10] KIE_DEAD_MAX
-- ARGV[11] KIE_REPLY_MAX: the replyTo list keeps at most this many events
-- ARGV[12] KIE_REPLY_TTL_S: and expires this long after each push
-- Returns 0 nothing to do (it just leaves KEYS[2]), 1 requeued, 2 dead.

--#include emit.lua
--#include history.lua
--#include job_end.lua
need(KEYS[1], 'hash') need(KEYS[3], 'list') need(KEYS[4], 'list') need(KEYS[5], 'hash')
need(KEYS[6], 'list')
local reply = KEYS[10]
if reply and not keytype_ok(reply, 'list') then reply = nil end
local j = redis.call('HMGET', KEYS[1], 'state', 'taskId', 'raw')
redis.call('ZREM', KEYS[2], ARGV[1])
if j[1] ~= 'uncertain' or (j[2] and j[2] ~= '') or not j[3] then return 0 end
-- a dead job keeps its descriptor until its hash expires: a task adopted after the
-- job.dead rebuilds its pending record from it
redis.call('HDEL', KEYS[1], 'uncertainUntil')
inflight_end(KEYS[1], KEYS[7])
if ARGV[2] == '1' then
  redis.call('RPUSH', KEYS[3], j[3])
  redis.call('HSET', KEYS[1], 'state', 'queued', 'error', ARGV[4], 'updatedAt', ARGV[5])
  return 1
end
dead_push(KEYS[4], KEYS[5], ARGV[3], tonumber(ARGV[10]))
redis.call('HSET', KEYS[1], 'state', 'dead', 'error', ARGV[4], 'updatedAt', ARGV[5],
  'finishedAt', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('HINCRBY', KEYS[5], 'dead', 1)
-- i21: the history counters (dead by policy)
hist_add(KEYS[8], KEYS[9], {'dead'})
emit(KEYS[6], reply, emit_times(KEYS[1], ARGV[7]), ARGV[8], tonumber(ARGV[9]),
  tonumber(ARGV[11]), ARGV[12])
return 2
