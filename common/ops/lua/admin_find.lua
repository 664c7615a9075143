#!lua flags=no-writes
-- admin_find.lua — the entries of a list that name a job, for `kie job show`: scans the
-- newest entries page by page (200 a time) for a fixed string. Read only.
-- KEYS[1] the list: <p>:results or <p>:dead
-- ARGV[1] the needle, "\"jobId\":\"<id>\"" (job ids need no escaping)
-- ARGV[2] scan cap: entries looked at most
-- ARGV[3] max: entries returned at most
-- Returns the matching entries, newest first.
local out, cap, max = {}, tonumber(ARGV[2]), tonumber(ARGV[3])
local n = redis.call('LLEN', KEYS[1])
if n > cap then n = cap end
local i = 0
while i < n and #out < max do
  local page = redis.call('LRANGE', KEYS[1], i, math.min(i + 199, n - 1))
  if #page == 0 then break end
  for _, e in ipairs(page) do
    if string.find(e, ARGV[1], 1, true) and #out < max then out[#out + 1] = e end
  end
  i = i + 200
end
return out
