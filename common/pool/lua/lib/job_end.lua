-- job_end.lua — what every step that ends a job does besides its own work, written once
-- for finalize.lua, job_dead.lua and uncertain_resolve.lua (included with
-- `--#include job_end.lua`). Every key is a parameter the caller took from KEYS.

-- The job's group gives back its in-flight slot (per-group caps, pool/sched.h): the job
-- hash's inflight field names the group while the job counts against a cap.
local function inflight_end(kjob, kinfl)
  local ig = redis.call('HGET', kjob, 'inflight')
  if ig then
    redis.call('HDEL', kjob, 'inflight')
    if redis.call('HINCRBY', kinfl, ig, -1) <= 0 then redis.call('HDEL', kinfl, ig) end
  end
end

-- A dead letter onto <p>:dead, newest first, capped at max: the oldest beyond it are
-- dropped and counted (dead_dropped in <p>:stats).
local function dead_push(kdead, kstats, entry, max)
  local n = redis.call('LPUSH', kdead, entry)
  if n > max then
    redis.call('LTRIM', kdead, 0, max - 1)
    redis.call('HINCRBY', kstats, 'dead_dropped', n - max)
  end
end
