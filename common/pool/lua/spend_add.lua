-- spend_add.lua — counts one task's cost in the day's spend counters (lib/spend.lua's
-- spend_add: the finalization includes the same function; this script runs it alone,
-- for tests and tools).
-- KEYS[1] <p>:spend:<yyyymmdd>
-- KEYS[2] <p>:spend:<yyyymmdd>:groups
-- ARGV[1] credits (>= 0)
-- ARGV[2] job type ('' none)
-- ARGV[3] account alias ('' none)
-- ARGV[4] group ('' none)
-- ARGV[5] most groups named a day (1000)
-- ARGV[6] TTL (s, 90 days)
-- Returns 1.
--#include spend.lua

local credits = tonumber(ARGV[1]) or 0
local groups_max = tonumber(ARGV[5]) or 1000
local ttl_s = tonumber(ARGV[6]) or 7776000
spend_add(KEYS[1], KEYS[2], credits, ARGV[2], ARGV[3], ARGV[4], groups_max, ttl_s)
return 1
