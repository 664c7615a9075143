-- job_start.lua — a runner starts the job it just picked (pick.lua): one owner per job
-- id, then state creating with one more attempt, in one step. A job cancelled, finished,
-- given a task, held by another live consumer or uncertain since it was queued is not
-- started (the runner releases its copy); a pause set since the pick puts it back. The
-- group's in-flight count taken by the pick stays with a started job (the job hash's
-- inflight field says which group) until its final state, and is given back otherwise.
-- KEYS[1] <p>:job:<jobId>                job hash
-- KEYS[2] <p>:pause                      pool-wide pause
-- KEYS[3] <p>:sched:<acct>:inflight      hash group -> jobs between claim and final state
-- KEYS[4] <p>:sched:<acct>:picked        hash jobId -> group (picked, not yet started)
-- ARGV[1] consumer id
-- ARGV[2] lease in ms (Redis's clock)
-- ARGV[3] jobId
-- KEYS[5] <p>:budget:<yyyymmdd>          today's (UTC) budget figures (i20-wire: the
--                                        budget block below, with KEYS[6..8], ARGV[4..9])
-- KEYS[6] <p>:budget:group               group -> daily budget
-- KEYS[7] <p>:budget:models              observed costs per model
-- KEYS[8] <p>:budget:open                open reservations
-- KEYS[9] <p>:pause:acct:<acct>         (optional, i20-accounts) the account's pause
-- ARGV[4] today (yyyymmdd)
-- ARGV[5] group ('' none)
-- ARGV[6] model
-- ARGV[7] its configured estimate (KIE_MODEL_CREDITS)
-- ARGV[8] KIE_DAILY_CREDIT_BUDGET (0 none)
-- ARGV[9] the account's alias
-- Returns {outcome, epoch, attempts, state before, taskId, owner before, mayHaveTask};
-- outcome: started | takeover | has_task | finished | owned | uncertain | paused |
-- over_budget (then an 8th element says which budget, a 9th the estimate; the job is not started and waits
-- over_budget: sched_put's 'over_budget'). started and takeover make this consumer the
-- owner (takeover: the job goes uncertain next).
--#include budget.lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local j = redis.call('HMGET', KEYS[1], 'state', 'owner', 'epoch', 'lease', 'taskId',
  'attempts', 'mayHaveTask')
local st, owner, epoch = j[1] or '', j[2] or '', tonumber(j[3] or '0') or 0
local lease, task, att = tonumber(j[4] or '0') or 0, j[5] or '', tonumber(j[6] or '0') or 0
local unsure = j[7] and '1' or '0'
local g = redis.call('HGET', KEYS[4], ARGV[3])
redis.call('HDEL', KEYS[4], ARGV[3])
local function out(o)
  if g and o ~= 'started' and o ~= 'takeover' then
    if redis.call('HINCRBY', KEYS[3], g, -1) <= 0 then redis.call('HDEL', KEYS[3], g) end
  end
  return {o, epoch, att, st, task, owner, unsure}
end
if st == 'completed' or st == 'failed' or st == 'cancelled' then return out('finished') end
if task ~= '' then return out('has_task') end
if owner ~= '' and owner ~= ARGV[1] and lease > now then return out('owned') end
-- run again after its reply was lost: this consumer started it already
if owner == ARGV[1] and st == 'creating' and redis.call('HEXISTS', KEYS[1], 'claimedAt') == 1
    and not g then
  return out('started')
end
if st == 'uncertain' then return out('uncertain') end
if redis.call('EXISTS', KEYS[2]) == 1 then return out('paused') end
-- >>> i20-accounts
if KEYS[9] and redis.call('EXISTS', KEYS[9]) == 1 then return out('paused') end
-- <<<
epoch = epoch + 1
local nows = string.format('%d', now)
local f = {'owner', ARGV[1], 'epoch', epoch, 'lease', string.format('%d', now + tonumber(ARGV[2])),
  'workerId', ARGV[1], 'updatedAt', nows, 'claimedAt', nows}
if g then f[#f + 1] = 'inflight' f[#f + 1] = g end
if st == 'creating' then
  -- its last owner stopped inside createTask: a task may exist; it goes uncertain
  redis.call('HSET', KEYS[1], unpack(f))
  return out('takeover')
end
-- >>> i20-wire: the budget reservation, with the createTask slot (docs/protocol.md,
-- "Credits, spend and budgets"): a job whose estimate would pass the pool's or its group's
-- budget today is not started and spends no attempt
if KEYS[8] then -- without the budget keys (tools, tests): no reservation
  local bud = budget_reserve(KEYS[1], KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[3], ARGV[4],
    ARGV[5], ARGV[6], tonumber(ARGV[7]) or 0, tonumber(ARGV[8]) or 0, now)
  if bud[1] == 0 then
    local r = out('over_budget')
    local which = bud[2] == 'group' and ('group ' .. ARGV[5]) or 'pool'
    r[8] = string.format('%s budget: %.6g of %.6g credits used today (UTC), this job ~%.6g',
      which, bud[3], bud[4], bud[5])
    r[9] = string.format('%.6g', bud[5])
    return r
  end
  f[#f + 1] = 'model' f[#f + 1] = ARGV[6]
  f[#f + 1] = 'account' f[#f + 1] = ARGV[9]
end
-- <<< i20-wire
att = att + 1
f[#f + 1] = 'state' f[#f + 1] = 'creating'
f[#f + 1] = 'attempts' f[#f + 1] = att
redis.call('HSET', KEYS[1], unpack(f))
return out('started')
