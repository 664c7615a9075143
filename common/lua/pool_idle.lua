#!lua flags=no-writes
-- pool_idle.lua — counts what the pool still has to do: the queue, polling, poll:due,
-- delayed and every consumer's processing list. The C side lists <p>:workers first and
-- passes their processing lists; the set is re-read here, and a consumer that joined
-- meanwhile makes the answer -1 (list again), so no processing list is missed.
-- KEYS[1] <p>:queue
-- KEYS[2] <p>:polling
-- KEYS[3] <p>:poll:due
-- KEYS[4] <p>:delayed
-- KEYS[5] <p>:workers                   set of consumer ids
-- KEYS[6..] <p>:processing:<cid>        one per ARGV[i], in order
-- ARGV[1..] the consumer ids listed
-- Returns the number of items left (0: idle), or -1 when <p>:workers changed.
local listed = {}
for _, w in ipairs(ARGV) do listed[w] = true end
for _, w in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  if not listed[w] then return -1 end
end
local n = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) +
  redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4])
for i = 1, #ARGV do n = n + redis.call('LLEN', KEYS[5 + i]) end
return n
