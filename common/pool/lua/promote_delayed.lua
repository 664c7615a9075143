-- promote_delayed.lua — moves up to 100 retries that are due from the delayed set to
-- the queue.
-- KEYS[1] <p>:delayed              zset descriptor -> due (epoch ms)
-- KEYS[2] <p>:queue                the job queue
-- ARGV[1] now (epoch ms)
-- Returns how many moved.
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, it in ipairs(items) do
  redis.call('ZREM', KEYS[1], it)
  redis.call('RPUSH', KEYS[2], it)
end
return #items
