-- history.lua — the history counters (docs/protocol.md, "History"), included with
-- `--#include history.lua` by the scripts that already count (one marked call each:
-- finalize, record_task, job_dead, kie_cancel, job_not_created). Every key is a
-- parameter its caller took from KEYS (pool/history.h builds them from the caller's
-- clock):
--   kmin  <p>:hist:m:<epoch minute>   HASH, expires 48 h after its first write
--   kday  <p>:hist:d:<yyyymmdd>       HASH (UTC day), expires 90 days after its first write
-- Fields: completed, failed, dead, cancelled, created (createTask calls that made a
-- task), refused (429/455 answers), credits (KIE's charge of the tasks finalized),
-- and the histograms wait:<le> (queued -> task created)
-- and gen:<le> (task created -> final state), <le> one of HIST_BOUNDS in ms or "inf".
-- Bounded whatever the load: at most 2880 minute hashes and 91 day hashes of at most
-- 6 + 2 x 14 fields each. A hash's expiry is set when a write creates one of its fields
-- (EXPIRE NX): its first write always does, so every hash has one, and the steady state
-- (fields that exist) costs no EXPIRE.

local HIST_BOUNDS = {1000, 2000, 5000, 10000, 20000, 30000, 60000, 120000, 300000,
  600000, 1200000, 3600000, 10800000}
local HIST_MIN_TTL, HIST_DAY_TTL = 172800, 7776000

-- the bucket field of a duration in ms: "<name>:<le>"
local function hist_bucket(name, ms)
  for _, le in ipairs(HIST_BOUNDS) do
    if ms <= le then return name .. ':' .. le end
  end
  return name .. ':inf'
end

-- Adds 1 to each field named in fields (a list of names) in both hashes (none when the
-- caller gave no keys: a caller of before the counters).
local function hist_add(kmin, kday, fields)
  if not kmin or not kday then return end
  local newm, newd = false, false
  for _, f in ipairs(fields) do
    if redis.call('HINCRBY', kmin, f, '1') == 1 then newm = true end
    if redis.call('HINCRBY', kday, f, '1') == 1 then newd = true end
  end
  if newm then redis.call('EXPIRE', kmin, HIST_MIN_TTL, 'NX') end
  if newd then redis.call('EXPIRE', kday, HIST_DAY_TTL, 'NX') end
end

-- true when v (HINCRBYFLOAT's answer) is what a new field holds after adding by
local function hist_fresh(v, by)
  local n = tonumber(v)
  return not n or math.abs(n - by) <= 1e-9 * math.max(1, math.abs(by))
end

-- Adds a task's credits (KIE's creditsConsumed) to the field credits of both hashes.
local function hist_add_credits(kmin, kday, credits)
  if not kmin or not kday or not credits or credits <= 0 then return end
  if hist_fresh(redis.call('HINCRBYFLOAT', kmin, 'credits', credits), credits) then
    redis.call('EXPIRE', kmin, HIST_MIN_TTL, 'NX')
  end
  if hist_fresh(redis.call('HINCRBYFLOAT', kday, 'credits', credits), credits) then
    redis.call('EXPIRE', kday, HIST_DAY_TTL, 'NX')
  end
end

-- The fields of a count and, when since (epoch ms, string or number) is known, the
-- bucket of now - since.
local function hist_fields(count, hname, since, now)
  local f = {}
  if count then f[1] = count end
  local s = tonumber(since or '')
  local n = tonumber(now or '')
  if hname and s and n and n >= s then f[#f + 1] = hist_bucket(hname, n - s) end
  return f
end
