-- job_dead.lua — releases the claimed descriptor into the dead letters with its reason;
-- with a job (ARGV[3] '1', owner only) the job's state becomes dead and its completion
-- event is emitted (emit.lua: to <p>:results, replyTo and <p>:events, with the job's
-- queuedAt and startedAt). Every key written is
-- type-checked first: a script cannot be rolled back; a replyTo key of another type is
-- skipped rather than failing half-way.
-- KEYS[1] <p>:processing:<cid>     the consumer's processing list
-- KEYS[2] <p>:dead                 list of dead letters, newest first
-- KEYS[3] <p>:job:<jobId>          job hash (any key when ARGV[3] is '0')
-- KEYS[4] <p>:recoveries           hash sha1(descriptor) -> count
-- KEYS[5] <p>:stats                hash of counters
-- KEYS[6] <p>:results              list of completion events, newest first
-- KEYS[7] <p>:sched:<acct>:inflight  hash group -> jobs in flight (i19)
-- KEYS[8] <p>:hist:m:<minute>      history, this minute (i21, lib/history.lua)
-- KEYS[9] <p>:hist:d:<yyyymmdd>    history, this day (i21)
-- KEYS[10] replyTo list (optional)
-- ARGV[1] the claimed descriptor
-- ARGV[2] the dead-letter entry (JSON)
-- ARGV[3] '1' the job's state becomes dead, '0' leave the job hash alone
-- ARGV[4] now (epoch ms)
-- ARGV[5] the reason
-- ARGV[6] TTL of a finished job hash (s)
-- ARGV[7] the completion event ('' for none)
-- ARGV[8] the events channel (<p>:events; a channel, not a key)
-- ARGV[9] KIE_RESULTS_MAX
-- ARGV[10] KIE_DEAD_MAX
-- ARGV[11] epoch of the claim ('0': no ownership check)
-- ARGV[12] consumer id
-- ARGV[13] KIE_REPLY_MAX: the replyTo list keeps at most this many events
-- ARGV[14] KIE_REPLY_TTL_S: and expires this long after each push
-- Returns 1 done, 2 done but replyTo skipped, 0 the copy was not held any more, -1 the
-- copy was released but the job is another consumer's (fenced): no entry.

--#include emit.lua
--#include history.lua
--#include job_end.lua
need(KEYS[2], 'list') need(KEYS[3], 'hash') need(KEYS[5], 'hash') need(KEYS[6], 'list')
local reply, skipped = KEYS[10], 0
if reply and not keytype_ok(reply, 'list') then reply, skipped = nil, 1 end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if ARGV[11] ~= '0' then
  local o = redis.call('HMGET', KEYS[3], 'owner', 'epoch')
  if o[1] ~= ARGV[12] or o[2] ~= ARGV[11] then return -1 end
end
dead_push(KEYS[2], KEYS[5], ARGV[2], tonumber(ARGV[10]))
if ARGV[3] == '1' then
  inflight_end(KEYS[3], KEYS[7])
  redis.call('HSET', KEYS[3], 'state', 'dead', 'error', ARGV[5], 'updatedAt', ARGV[4],
    'finishedAt', ARGV[4])
  -- raw stays until the hash expires: a task adopted after the job.dead (a createTask of
  -- unknown outcome) rebuilds its pending record from it
  redis.call('HDEL', KEYS[3], 'owner', 'lease')
  redis.call('EXPIRE', KEYS[3], ARGV[6])
end
redis.call('HDEL', KEYS[4], redis.sha1hex(ARGV[1]))
redis.call('HINCRBY', KEYS[5], 'dead', 1)
-- i21: the history counters
hist_add(KEYS[8], KEYS[9], {'dead'})
if ARGV[7] ~= '' then
  -- KEYS[3] is the job's hash whenever there is an event (a descriptor that names an id)
  local ev = emit_times(KEYS[3], ARGV[7])
  emit(KEYS[6], reply, ev, ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[13]), ARGV[14])
end
return 1 + skipped
