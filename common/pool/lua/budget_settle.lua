-- budget_settle.lua — a task's cost arrived: its job's reservation becomes that spend
-- (lib/budget.lua's budget_settle: the finalization includes the same function; this
-- script runs it alone, for tests and tools).
-- KEYS[1] <p>:job:<jobId>
-- KEYS[2] <p>:budget:<today>
-- KEYS[3] <p>:budget:<yesterday>
-- KEYS[4] <p>:budget:group
-- KEYS[5] <p>:budget:models
-- KEYS[6] <p>:budget:open
-- ARGV[1] job id
-- ARGV[2] today (yyyymmdd)
-- ARGV[3] yesterday
-- ARGV[4] group ('' none)
-- ARGV[5] model
-- ARGV[6] credits consumed ('' = KIE did not say: the estimate counts)
-- Returns the credits counted, as a decimal string.
--#include budget.lua

local credits = tonumber(ARGV[6])
return tostring(budget_settle(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[1],
			      ARGV[2], ARGV[3], ARGV[4], ARGV[5], credits))
