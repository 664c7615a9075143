-- budget.lua — the budget arithmetic (docs/protocol.md, "Credits, spend and budgets"),
-- included with `--#include budget.lua` by the scripts that reserve a job's estimated
-- cost with its createTask slot (the pick), settle it when the task's cost arrives (the
-- finalization), release it when no task was made, or heal a lost one. Every key is a
-- parameter its caller took from KEYS:
--   kjob     <p>:job:<jobId>        fields budgetDay, budgetEst, budgetGroup, budgetAt
--   kday     <p>:budget:<yyyymmdd>  reserved, spent, reserved|<g>, spent|<g> (g: groups
--            with a budget), of the reservation's UTC day; kyday: the day before
--   kgroups  <p>:budget:group       group -> daily budget (kie budget set)
--   kmodels  <p>:budget:models      <model>|n, <model>|sum: successful tasks' costs
--   kopen    <p>:budget:open        ZSET "<yyyymmdd>|<jobId>" -> reserved at (ms)
-- Amounts are credits (decimal). The rule: a reservation is made only while
-- spent + reserved + estimate <= budget, for the pool (KIE_DAILY_CREDIT_BUDGET, 0 = none)
-- and for the job's group when it has a budget; so the day's spend passes a budget by at
-- most the estimate's error on the reservations open when the last one was made.

local BUDGET_DAY_TTL_S = 259200   -- a day hash outlives its day by two (late settlements)
local BUDGET_OBSERVED_MIN = 3     -- successes seen before their average is the estimate
local BUDGET_OBSERVED_MAX = 200   -- then n and sum are halved: recent costs weigh more

local function budget_num(v)
	return tonumber(v) or 0
end

-- adds by to field, writing 0 for what is left of a float's rounding; returns true when
-- the field holds no more than by now (it was new, or 0)
local function budget_add(kday, field, by)
	local v = tonumber(redis.call('HINCRBYFLOAT', kday, field, by))
	if v and v < 1e-9 and v > -1e-9 and v ~= 0 then
		redis.call('HSET', kday, field, 0)
	end
	return not v or math.abs(v - by) <= 1e-9 * math.max(1, math.abs(by))
end

-- The estimated cost of one task of model: the observed average of its successful
-- tasks once BUDGET_OBSERVED_MIN were seen, else configured (KIE_MODEL_CREDITS).
local function budget_estimate(kmodels, model, configured)
	local f = redis.call('HMGET', kmodels, model .. '|n', model .. '|sum')
	local n, sum = budget_num(f[1]), budget_num(f[2])
	if n >= BUDGET_OBSERVED_MIN and sum > 0 then
		return sum / n
	end
	return configured
end

-- A successful task of model cost credits: folded into its observed average.
local function budget_observe(kmodels, model, credits)
	if not (credits > 0) or model == '' then
		return
	end
	local n = redis.call('HINCRBY', kmodels, model .. '|n', 1)
	local sum = tonumber(redis.call('HINCRBYFLOAT', kmodels, model .. '|sum', credits))
	if n >= BUDGET_OBSERVED_MAX then
		redis.call('HSET', kmodels, model .. '|n', math.floor(n / 2), model .. '|sum',
			   sum / 2)
	end
end

-- Reserves the estimated cost of the job's next task, or says which budget it would pass.
-- day: the reservation's UTC day (yyyymmdd, kday's); group: the job's group ('' none);
-- configured: the model's KIE_MODEL_CREDITS estimate; pool_budget: 0 = none.
-- Returns {1, 'reserved'|'held'|'none', estimate} ('held': the job holds a reservation
-- already, kept; 'none': no budget applies, nothing written) or
-- {0, 'pool'|'group', used, budget, estimate}: the job waits (over_budget).
local function budget_reserve(kjob, kday, kgroups, kmodels, kopen, job_id, day, group,
			      model, configured, pool_budget, now_ms)
	local held = redis.call('HGET', kjob, 'budgetEst')
	if held then
		return {1, 'held', tonumber(held)}
	end
	local gbudget = nil
	if group ~= '' then
		gbudget = tonumber(redis.call('HGET', kgroups, group))
	end
	if not (pool_budget > 0) and not gbudget then
		return {1, 'none', 0}
	end
	local est = budget_estimate(kmodels, model, configured)
	local f = redis.call('HMGET', kday, 'reserved', 'spent')
	local used = budget_num(f[1]) + budget_num(f[2])
	if pool_budget > 0 and used + est > pool_budget + 1e-9 then
		return {0, 'pool', used, pool_budget, est}
	end
	if gbudget then
		f = redis.call('HMGET', kday, 'reserved|' .. group, 'spent|' .. group)
		used = budget_num(f[1]) + budget_num(f[2])
		if used + est > gbudget + 1e-9 then
			return {0, 'group', used, gbudget, est}
		end
		budget_add(kday, 'reserved|' .. group, est)
	end
	budget_add(kday, 'reserved', est)
	redis.call('EXPIRE', kday, BUDGET_DAY_TTL_S)
	redis.call('HSET', kjob, 'budgetDay', day, 'budgetEst', est, 'budgetGroup',
		   gbudget and group or '', 'budgetAt', now_ms)
	redis.call('ZADD', kopen, now_ms, day .. '|' .. job_id)
	return {1, 'reserved', est}
end

-- Takes the job's reservation off its day (kday when its day is day, kyday when it is
-- yday, else only the job's fields); spent (a number, or nil: nothing spent) is added
-- to the same day (with use_est and spent nil: the estimate is what was spent, 0 without
-- a reservation). Without a reservation, spent goes to kday (the group's part when the
-- group has a budget now). Returns the reservation's estimate, or 0 when there was none,
-- and what was counted as spent.
local function budget_unreserve(kjob, kday, kyday, kgroups, kopen, job_id, day, yday, group,
				spent, use_est)
	local f = redis.call('HMGET', kjob, 'budgetDay', 'budgetEst', 'budgetGroup')
	local est = tonumber(f[2])
	if spent == nil and use_est then
		spent = est or 0
	end
	local target = kday
	local g = group
	if est then
		g = f[3] or ''
		if f[1] == day then
			target = kday
		elseif f[1] == yday then
			target = kyday
		else
			target = nil -- older: that day is over, its figures are left as they were
		end
		if target then
			budget_add(target, 'reserved', -est)
			if g ~= '' then
				budget_add(target, 'reserved|' .. g, -est)
			end
		end
		redis.call('HDEL', kjob, 'budgetDay', 'budgetEst', 'budgetGroup', 'budgetAt')
		redis.call('ZREM', kopen, (f[1] or '') .. '|' .. job_id)
	elseif g ~= '' and not redis.call('HGET', kgroups, g) then
		g = ''
	end
	if spent and spent > 0 then
		target = target or kday
		-- the day's expiry is set when its spent field is new (a reservation's
		-- budget_reserve sets it too)
		local new = budget_add(target, 'spent', spent)
		if g ~= '' then
			budget_add(target, 'spent|' .. g, spent)
		end
		if new then
			redis.call('EXPIRE', target, BUDGET_DAY_TTL_S)
		end
	end
	return est or 0, spent
end

-- The task's cost arrived (credits: a number, or nil when KIE did not say: the
-- estimate is counted): the reservation becomes that spend, on the reservation's day.
-- model: the task's model, for the observed average. Returns the credits counted.
local function budget_settle(kjob, kday, kyday, kgroups, kmodels, kopen, job_id, day, yday,
			     group, model, credits)
	local _, spent = budget_unreserve(kjob, kday, kyday, kgroups, kopen, job_id, day, yday,
					  group, credits, true)
	if credits then
		budget_observe(kmodels, model, credits)
	end
	return spent
end

-- No task was made (a refusal before createTask, a retry, a dead letter without a
-- task): the reservation is given back. Returns its estimate, 0 when there was none.
local function budget_release(kjob, kday, kyday, kgroups, kopen, job_id, day, yday)
	return budget_unreserve(kjob, kday, kyday, kgroups, kopen, job_id, day, yday, '', nil)
end
