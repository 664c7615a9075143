-- poll_state.lua — a poll found the task still running: its next poll's due time, and
-- KIE's state as that poll read it (the operator page's In flight view shows it), in one
-- step. Written only while the task is being polled: a task finalized meanwhile (its hash
-- gone or marked finalized, its id out of the zset) is left alone, so no hash is made
-- again without its expiry.
-- KEYS[1] <p>:task:<taskId>        task hash
-- KEYS[2] <p>:poll:due             zset of task ids being polled
-- ARGV[1] taskId
-- ARGV[2] due time (epoch ms)
-- ARGV[3] KIE's state (waiting, queuing, generating, ...)
-- Returns 1 rescheduled, 0 not polled any more.
if redis.call('ZADD', KEYS[2], 'XX', 'CH', ARGV[2], ARGV[1]) == 0 and
    not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 1 and not redis.call('HGET', KEYS[1], 'finalizedAt') then
  redis.call('HSET', KEYS[1], 'kieState', ARGV[3])
end
return 1
