#!lua flags=no-writes
-- admin_find_queued.lua — where a job that has no job hash yet waits, for `kie job show`:
-- a producer's descriptor gets its hash only when a runner claims it. Reads at most ARGV[2]
-- entries of the queue — all of it when it is no longer, else half from its consuming end
-- (the next to be claimed) and half from its producing end (the newest) — and at most
-- ARGV[2] of the delayed set, earliest due first, 200 a time. An entry is a candidate when
-- it holds the id's bytes, and a match when it decodes to an object whose "id" is the id
-- (a descriptor that writes its id with \u escapes is not found). Read only.
-- KEYS[1] <p>:queue     list of descriptors; producers LPUSH, workers take the right end
-- KEYS[2] <p>:delayed   zset of descriptors, score = due time (epoch ms)
-- ARGV[1] the job id
-- ARGV[2] scan cap per key
-- Returns {where, due, queue length, queue entries read, delayed size, delayed entries
-- read}: where is 'queue', 'delayed' or '' (not found); due is the delayed entry's score
-- ('' otherwise).
local id, cap = ARGV[1], tonumber(ARGV[2])
local function is_it(e)
  if not string.find(e, id, 1, true) then return false end
  local ok, d = pcall(cjson.decode, e)
  return ok and type(d) == 'table' and d.id == id
end
local qlen = redis.call('LLEN', KEYS[1])
local dlen = redis.call('ZCARD', KEYS[2])
local qseen = 0
-- n entries from one end: dir -1 from the consuming (right) end, the next to be claimed
-- first; dir 1 from the producing (left) end, the newest first
local function scan_queue(n, dir)
  local i = 0
  while i < n do
    local last = math.min(i + 199, n - 1)
    local page = dir < 0 and redis.call('LRANGE', KEYS[1], -1 - last, -1 - i)
                 or redis.call('LRANGE', KEYS[1], i, last)
    if #page == 0 then return false end
    local a, b = #page, 1
    if dir > 0 then a, b = 1, #page end
    for k = a, b, (dir < 0 and -1 or 1) do
      qseen = qseen + 1
      -- the scheduling issue gives a queued job its position here
      if is_it(page[k]) then return true end
    end
    i = last + 1
  end
  return false
end
local found
if qlen <= cap then
  found = scan_queue(qlen, -1)
else
  local half = math.floor(cap / 2)
  found = scan_queue(half, -1) or scan_queue(cap - half, 1)
end
if found then return {'queue', '', qlen, qseen, dlen, 0} end
local dn = math.min(dlen, cap)
local dseen = 0
while dseen < dn do
  local page = redis.call('ZRANGE', KEYS[2], dseen, math.min(dseen + 199, dn - 1),
    'WITHSCORES')
  if #page == 0 then break end
  for i = 1, #page, 2 do
    dseen = dseen + 1
    if is_it(page[i]) then return {'delayed', page[i + 1], qlen, qseen, dlen, dseen} end
  end
end
return {'', '', qlen, qseen, dlen, dseen}
