#!lua flags=no-writes
-- admin_rates_minutes.lua — the operator page's live chart: completion events and dead
-- letters per minute since a cutoff, from the timestamps Redis already holds (the same
-- reading as admin_rates.lua: the newest entries, up to a cap, until one is older than
-- the cutoff). A minute is the first 16 characters of the ISO-8601 UTC time
-- ("2026-11-24T12:03"). Read only.
-- KEYS[1] <p>:results   list of completion events, newest first
-- KEYS[2] <p>:dead      list of dead letters, newest first
-- ARGV[1] cutoff, ISO-8601 UTC: entries at or after it count
-- ARGV[2] cap: entries read from each list at most
-- Returns {capped (1: a list's cap-th entry was still in the window), then per minute
-- that has any: minute, completed, failed, dead letters}, oldest minute first.
local cut, cap = ARGV[1], tonumber(ARGV[2])
local by, order, capped = {}, {}, 0
local function bucket(at)
  local m = string.sub(at, 1, 16)
  local b = by[m]
  if not b then
    b = {0, 0, 0}
    by[m] = b
    order[#order + 1] = m
  end
  return b
end
local ev = redis.call('LRANGE', KEYS[1], 0, cap - 1)
for i = 1, #ev do
  local at = string.match(ev[i], '"finishedAt":"([^"]+)"')
  if not at or at < cut then break end
  local st = string.match(ev[i], '"status":"(%a+)"')
  if st == 'completed' then bucket(at)[1] = bucket(at)[1] + 1
  elseif st == 'failed' then bucket(at)[2] = bucket(at)[2] + 1 end
  if i == cap then capped = 1 end
end
local de = redis.call('LRANGE', KEYS[2], 0, cap - 1)
for i = 1, #de do
  local at = nil
  for m in string.gmatch(de[i], '"failedAt":"([^"]+)"') do at = m end
  if not at or at < cut then break end
  bucket(at)[3] = bucket(at)[3] + 1
  if i == cap then capped = 1 end
end
table.sort(order)
local out = {capped}
for _, m in ipairs(order) do
  out[#out + 1] = m
  out[#out + 1] = by[m][1]
  out[#out + 1] = by[m][2]
  out[#out + 1] = by[m][3]
end
return out
