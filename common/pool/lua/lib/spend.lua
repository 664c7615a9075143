-- spend.lua — the spend counters (docs/protocol.md, "Credits, spend and budgets"),
-- included with `--#include spend.lua` by the script that finalizes a task. Every key is
-- a parameter its caller took from KEYS:
--   kday     <p>:spend:<yyyymmdd>         HASH total, tasks, type:<t>, account:<a>,
--                                         group:(other)
--   kgroups  <p>:spend:<yyyymmdd>:groups  ZSET group -> credits, at most groups_max
-- of the UTC day the cost arrived. Both expire ttl_s (90 days) after their first write
-- (the day's first task; a later one only adds).
-- The groups are bounded: a group already counted, or a new one while the set has room,
-- is counted under its name; once it is full, a new group whose amount is at least the
-- smallest member's takes that member's place (the member's credits move to
-- group:(other)), a smaller one is counted in group:(other). The members and
-- group:(other) always add up to the day's group spend; a named group's figure is never
-- more than what it spent (less when it was evicted once and came back).

local SPEND_OTHER = '(other)'

-- Counts one task's cost. credits: a number >= 0; type, account: labels ('' = none);
-- group: '' = no group (counted in the totals only).
local function spend_add(kday, kgroups, credits, type, account, group, groups_max, ttl_s)
	redis.call('HINCRBYFLOAT', kday, 'total', credits)
	local first = redis.call('HINCRBY', kday, 'tasks', '1') == 1
	if type ~= '' then
		redis.call('HINCRBYFLOAT', kday, 'type:' .. type, credits)
	end
	if account ~= '' then
		redis.call('HINCRBYFLOAT', kday, 'account:' .. account, credits)
	end
	if group ~= '' then
		local card = nil
		if not redis.call('ZSCORE', kgroups, group) then
			card = redis.call('ZCARD', kgroups)
		end
		if not card or card < groups_max then
			redis.call('ZINCRBY', kgroups, credits, group)
			if card == 0 then
				redis.call('EXPIRE', kgroups, ttl_s)
			end
		else
			local low = redis.call('ZRANGE', kgroups, 0, 0, 'WITHSCORES')
			if low[1] and credits >= tonumber(low[2]) then
				redis.call('ZREM', kgroups, low[1])
				redis.call('HINCRBYFLOAT', kday, 'group:' .. SPEND_OTHER, low[2])
				redis.call('ZADD', kgroups, credits, group)
			else
				redis.call('HINCRBYFLOAT', kday, 'group:' .. SPEND_OTHER, credits)
			end
		end
	end
	if first then
		redis.call('EXPIRE', kday, ttl_s)
	end
end
