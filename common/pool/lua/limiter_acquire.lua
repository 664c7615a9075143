-- limiter_acquire.lua — a slot of an account's rate limit: the sliding-window log with
-- reservations (limiter.h). Gives the earliest time t >= now at which the window
-- (t - W, t] has room and logs t at once; a caller whose t is in the future sleeps until
-- then and asks again with the same member. Time is Redis's (TIME), never a worker's.
-- KEYS[1] <ap>:{<account>}:<name>         zset member -> reserved call time (ms)
-- KEYS[2] <ap>:{<account>}:<name>:state   hash blockedUntil, backoffMs, ...
-- ARGV[1] calls per window
-- ARGV[2] window in ms, with the margin
-- ARGV[3] member (the caller's reservation)
-- ARGV[4] late_ms: a reservation woken later than this is made anew
-- ARGV[5] '1' when the member is new (no reservation to look up), else '0'
-- ARGV[6] burst: '0' no pacing; b > 0: besides the window, at most b calls per b x
--         (window / limit), so the calls are spread across the window instead of spent
--         at its start (the scheduler's fairness needs a slot every window/limit)
-- Returns {granted 0|1, wait_ms, blocked 0|1}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, window, late = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local blocked = tonumber(redis.call('HGET', KEYS[2], 'blockedUntil') or '0') or 0
local s = false
if ARGV[5] ~= '1' then s = redis.call('ZSCORE', KEYS[1], ARGV[3]) end
if blocked > now then
  if s then redis.call('ZREM', KEYS[1], ARGV[3]) end
  return {0, blocked - now, 1}
end
if s then
  s = tonumber(s)
  if s > now then return {0, s - now, 0} end
  if now - s <= late then return {1, 0, 0} end
  -- woken too late: the call would not happen at the time logged, so log it anew
  redis.call('ZREM', KEYS[1], ARGV[3])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local at = now
if n > 0 then
  local last = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
  if last > at then at = last end
  -- the log stays sorted by appending, so the window rule is s[n+1] >= s[n+1-limit] + W
  if n >= limit then
    local e = tonumber(redis.call('ZRANGE', KEYS[1], n - limit, n - limit,
      'WITHSCORES')[2]) + window
    if e > at then at = e end
  end
  local b = tonumber(ARGV[6] or '0') or 0
  if b > 0 and n >= b then
    -- (whole ms, rounded down: at a spacing under 1 ms, e.g. with the limits lifted, the
    -- window rule alone holds and no call waits for a slot of its own)
    local e = tonumber(redis.call('ZRANGE', KEYS[1], n - b, n - b, 'WITHSCORES')[2]) +
      math.floor(b * window / limit)
    if e > at then at = e end
  end
end
redis.call('ZADD', KEYS[1], at, ARGV[3])
redis.call('PEXPIRE', KEYS[1], at - now + window + 1000)
if at <= now then return {1, 0, 0} end
return {0, at - now, 0}
