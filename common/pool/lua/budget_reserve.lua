-- budget_reserve.lua — reserves a job's estimated cost against the day's budgets
-- (lib/budget.lua's budget_reserve: the pick script includes the same function and calls
-- it with the createTask slot; this script runs it alone, for tests and tools).
-- KEYS[1] <p>:job:<jobId>
-- KEYS[2] <p>:budget:<yyyymmdd>
-- KEYS[3] <p>:budget:group
-- KEYS[4] <p>:budget:models
-- KEYS[5] <p>:budget:open
-- ARGV[1] job id
-- ARGV[2] the UTC day (yyyymmdd) the reservation counts on: the day of KEYS[2]
-- ARGV[3] group ('' none)
-- ARGV[4] model
-- ARGV[5] its configured estimate (KIE_MODEL_CREDITS)
-- ARGV[6] pool budget (KIE_DAILY_CREDIT_BUDGET, 0 none)
-- ARGV[7] now (ms)
-- Returns {1, 'reserved'|'held'|'none', estimate} or
-- {0, 'pool'|'group', used, budget, estimate}; amounts as decimal strings.
--#include budget.lua

local configured = tonumber(ARGV[5]) or 0
local pool_budget = tonumber(ARGV[6]) or 0
local now_ms = tonumber(ARGV[7]) or 0
local r = budget_reserve(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2],
			 ARGV[3], ARGV[4], configured, pool_budget, now_ms)
for i = 3, #r do
	r[i] = tostring(r[i])
end
return r
