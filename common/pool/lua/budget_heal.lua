-- budget_heal.lua — the recovery sweep's step for one open reservation (a member
-- "<yyyymmdd>|<jobId>" of <p>:budget:open) older than the age given: a reservation whose
-- job holds no createTask or task in flight any more is not left to count against the
-- budget. The
-- job's state decides: completed, failed or dead with a task (taskId or mayHaveTask) —
-- its settlement was lost: the estimate is counted as spent; queued, retry_wait,
-- over_budget, dead without a task, or no job hash — released; any other state
-- (creating, polling, uncertain, ...) — kept. A member whose job holds no reservation of
-- that day is dropped.
-- KEYS[1] <p>:budget:open
-- KEYS[2] <p>:job:<jobId>
-- KEYS[3] <p>:budget:<today>
-- KEYS[4] <p>:budget:<yesterday>
-- KEYS[5] <p>:budget:group
-- KEYS[6] <p>:budget:models
-- ARGV[1] the member
-- ARGV[2] job id
-- ARGV[3] today (yyyymmdd)
-- ARGV[4] yesterday
-- ARGV[5] now (ms)
-- ARGV[6] age (ms): younger reservations are not looked at
-- Returns 0 kept (or not there), 1 released, 2 settled at the estimate, 3 dropped.
--#include budget.lua

local member, job_id, today, yday = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now_ms, age_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
local at = tonumber(redis.call('ZSCORE', KEYS[1], member))
if not at or now_ms - at < age_ms then
	return 0
end
local f = redis.call('HMGET', KEYS[2], 'state', 'budgetDay', 'taskId', 'mayHaveTask')
local state = f[1] or ''
if not f[2] or f[2] ~= string.sub(member, 1, 8) then
	redis.call('ZREM', KEYS[1], member)
	return 3
end
local idle = {[''] = true, queued = true, retry_wait = true, over_budget = true,
	      completed = true, failed = true, dead = true}
if not idle[state] then
	return 0
end
local ended = state == 'completed' or state == 'failed' or state == 'dead'
if ended and ((f[3] and f[3] ~= '') or f[4] == '1') then
	budget_settle(KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[1], job_id, today, yday,
		      '', '', nil)
	return 2
end
budget_release(KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[1], job_id, today, yday)
return 1
