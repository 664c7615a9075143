#!lua flags=no-writes
-- admin_rates_minutes.lua — the operator page's live chart: completion events and dead
-- letters per minute since a cutoff, from the timestamps Redis already holds (the same
-- reading as admin_rates.lua: the newest entries, up to a cap, until one is older than
-- the cutoff; read 200 at a time, so a quiet pool costs a few entries). A minute is the
-- first 16 characters of the ISO-8601 UTC time ("2026-11-24T12:03"). Read only.
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
-- reads a list newest first, 200 entries a time, until an entry is older than the cutoff
-- (or has no time) or cap entries were read; at(e) is the entry's time, count(e, t) counts it
local function scan(key, at, count)
  local i = 0
  while i < cap do
    local page = redis.call('LRANGE', key, i, math.min(i + 199, cap - 1))
    if #page == 0 then return end
    for k = 1, #page do
      local t = at(page[k])
      if not t or t < cut then return end
      count(page[k], t)
      if i + k == cap then capped = 1 end
    end
    i = i + #page
  end
end
scan(KEYS[1], function(e) return string.match(e, '"finishedAt":"([^"]+)"') end,
  function(e, t)
    local st = string.match(e, '"status":"(%a+)"')
    if st == 'completed' then bucket(t)[1] = bucket(t)[1] + 1
    elseif st == 'failed' then bucket(t)[2] = bucket(t)[2] + 1 end
  end)
scan(KEYS[2], function(e)
    local t = nil
    for m in string.gmatch(e, '"failedAt":"([^"]+)"') do t = m end
    return t
  end,
  function(e, t) bucket(t)[3] = bucket(t)[3] + 1 end)
table.sort(order)
local out = {capped}
for _, m in ipairs(order) do
  out[#out + 1] = m
  out[#out + 1] = by[m][1]
  out[#out + 1] = by[m][2]
  out[#out + 1] = by[m][3]
end
return out
