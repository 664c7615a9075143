#!lua flags=no-writes
-- admin_rates.lua — rates for `kie stats` from timestamps Redis already holds: the newest
-- events and dead letters at or after a cutoff. Read only.
-- Events carry "status" and "finishedAt" first-level (before "meta"); a dead letter's
-- "failedAt" is its last field, and inside "raw" quotes are escaped, so a plain search
-- finds the entry's own (the last match).
-- KEYS[1] <p>:results   list of completion events, newest first
-- KEYS[2] <p>:dead      list of dead letters, newest first
-- ARGV[1] cutoff, ISO-8601 UTC (e.g. "2026-11-24T12:00:00.000Z"): entries at or after it count
-- ARGV[2] cap: entries read from each list at most
-- Returns {completed, failed, dead events, results read, dead letters, dead read,
-- results capped (1: the cap-th result is still in the window), dead capped}.
local cut, cap = ARGV[1], tonumber(ARGV[2])
local c, f, d, nr, capped_r = 0, 0, 0, 0, 0
local ev = redis.call('LRANGE', KEYS[1], 0, cap - 1)
for i = 1, #ev do
  local at = string.match(ev[i], '"finishedAt":"([^"]+)"')
  if not at or at < cut then break end
  nr = i
  local st = string.match(ev[i], '"status":"(%a+)"')
  if st == 'completed' then c = c + 1
  elseif st == 'failed' then f = f + 1
  elseif st == 'dead' then d = d + 1 end
  if i == cap then capped_r = 1 end
end
local dl, nd, capped_d = 0, 0, 0
local de = redis.call('LRANGE', KEYS[2], 0, cap - 1)
for i = 1, #de do
  local at = nil
  for m in string.gmatch(de[i], '"failedAt":"([^"]+)"') do at = m end
  if not at or at < cut then break end
  dl, nd = dl + 1, i
  if i == cap then capped_d = 1 end
end
return {c, f, d, nr, dl, nd, capped_r, capped_d}
