-- budget_release.lua — no task was made for the job (refused before createTask, a
-- retry, a dead letter without a task): its reservation is given back
-- (lib/budget.lua's budget_release, for the steps written in C and for tests).
-- KEYS[1] <p>:job:<jobId>
-- KEYS[2] <p>:budget:<today>
-- KEYS[3] <p>:budget:<yesterday>
-- KEYS[4] <p>:budget:group
-- KEYS[5] <p>:budget:open
-- ARGV[1] job id
-- ARGV[2] today (yyyymmdd)
-- ARGV[3] yesterday
-- Returns the estimate given back, as a decimal string ('0': the job held none).
--#include budget.lua

return tostring(budget_release(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2],
			       ARGV[3]))
