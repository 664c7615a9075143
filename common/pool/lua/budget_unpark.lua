-- budget_unpark.lua — jobs waiting over_budget in one account's scheduling structure go
-- back to its ready set, in their old order, while today's budgets (UTC) have room for
-- their estimates: after `kie budget set` raised a budget, and every second from each
-- worker's credits thread (so a new UTC day, whose budget hash is empty, releases them
-- within a second). Each job let go is counted against the room, so a raise of n tasks'
-- worth wakes about n jobs, not all of them; a job let go that still does not fit when it
-- is picked (the room was taken meanwhile) is parked again by the pick's reservation.
-- KEYS[1] <p>:sched:<acct>:overBudget    zset jobId -> its ready score
-- KEYS[2] <p>:sched:<acct>:overBudgetEst hash jobId -> "group\testimate"
-- KEYS[3] <p>:sched:<acct>:ready         zset jobId -> (9 - priority) * 1e12 + tag
-- KEYS[4] <p>:sched:<acct>:state         hash n<p> (ready per priority), ...
-- KEYS[5] <p>:sched:<acct>:items         hash jobId -> "prio\tgroup\t..." (cancelled: gone)
-- KEYS[6] <p>:budget:<today>             reserved, spent, reserved|<g>, spent|<g>
-- KEYS[7] <p>:budget:group               group -> daily budget
-- KEYS[8] <p>:sched:<acct>:wake          list: a token wakes an idle runner
-- ARGV[1] KIE_DAILY_CREDIT_BUDGET (0 none)
-- ARGV[2] most jobs looked at in one call
-- Returns the number of jobs made ready.
local SPAN = 1e12
if redis.call('ZCARD', KEYS[1]) == 0 then return 0 end
local pool = tonumber(ARGV[1]) or 0
local function num(v) return tonumber(v) or 0 end
local d = redis.call('HMGET', KEYS[6], 'reserved', 'spent')
local pused = num(d[1]) + num(d[2])
local gb, gused = {}, {}
local n = 0
local m = redis.call('ZRANGE', KEYS[1], 0, (tonumber(ARGV[2]) or 1000) - 1, 'WITHSCORES')
for i = 1, #m, 2 do
  local id, sc = m[i], tonumber(m[i + 1])
  local info = redis.call('HGET', KEYS[2], id) or ''
  local g, est = string.match(info, '^([^\t]*)\t(.*)$')
  est = tonumber(est) or 0
  g = g or ''
  if redis.call('HEXISTS', KEYS[5], id) == 0 then
    -- cancelled meanwhile: nothing to wake
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
  else
    local fits = not (pool > 0 and pused + est > pool + 1e-9)
    if fits and g ~= '' then
      if gb[g] == nil then
        gb[g] = tonumber(redis.call('HGET', KEYS[7], g)) or false
        local f = redis.call('HMGET', KEYS[6], 'reserved|' .. g, 'spent|' .. g)
        gused[g] = num(f[1]) + num(f[2])
      end
      if gb[g] and gused[g] + est > gb[g] + 1e-9 then fits = false end
    end
    if fits then
      redis.call('ZREM', KEYS[1], id)
      redis.call('HDEL', KEYS[2], id)
      redis.call('ZADD', KEYS[3], sc, id)
      redis.call('HINCRBY', KEYS[4], 'n' .. (9 - math.floor(sc / SPAN)), 1)
      pused = pused + est
      if g ~= '' and gused[g] then gused[g] = gused[g] + est end
      n = n + 1
    end
  end
end
if n > 0 and redis.call('LLEN', KEYS[8]) == 0 then redis.call('LPUSH', KEYS[8], '1') end
return n
