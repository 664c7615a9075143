#!lua flags=no-writes
-- admin_sched_page.lua — one page of the jobs that wait in the account's scheduling
-- structure (pool/sched.h), for the operator page's queued view: the ready jobs in the
-- order they go (position 0 is picked next), the delayed ones earliest due first, the
-- ones parked at their group's cap, or the descriptors not yet routed (<p>:queue from its
-- consuming end). Optionally only one priority and/or one group: then the members are
-- walked in order (at most ARGV[6] of them) and the positions stay those of the whole
-- set. Returns what each job's item says (priority, group, queuedAt) and what its
-- descriptor says of itself (type), with its size, never its bytes. Read only.
-- KEYS[1] <p>:sched:<acct>:ready    zset jobId -> (9 - priority) * 1e12 + tag
-- KEYS[2] <p>:sched:<acct>:delayed  zset jobId -> due (epoch ms)
-- KEYS[3] <p>:sched:<acct>:items    hash jobId -> "prio\tgroup\tqueuedAt\ttag\tdescriptor"
-- KEYS[4] <p>:sched:<acct>:parked   zset "group\1score\1jobId" (lex)
-- KEYS[5] <p>:queue                 list of descriptors not yet routed
-- ARGV[1] 'ready' | 'delayed' | 'parked' | 'queue'
-- ARGV[2] offset (among the matching entries)
-- ARGV[3] limit
-- ARGV[4] priority 0..9, or '' for any
-- ARGV[5] group ('' for any; '\1' for the default group)
-- ARGV[6] members walked at most when filtering
-- Returns {ready, delayed, parked, queue length, matched (-1: not counted), capped 0|1,
-- then per entry: jobId, priority ('' unknown), group, queuedAt, type, bytes, position,
-- due ('' unless delayed)}.
local from, off, lim = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local fprio, fgroup, cap = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
if fgroup == '\1' then fgroup = '' elseif fgroup == '' then fgroup = nil end
local function n(cmd, k)
  local ok, v = pcall(redis.call, cmd, k)
  if ok and type(v) == 'number' then return v end
  return 0
end
local counts = {n('ZCARD', KEYS[1]), n('ZCARD', KEYS[2]), n('ZCARD', KEYS[4]),
  n('LLEN', KEYS[5])}
local out = {counts[1], counts[2], counts[3], counts[4], -1, 0}

local function desc_type(d)
  local ty = ''
  if #d <= 65536 then
    local ok, o = pcall(cjson.decode, d)
    if ok and type(o) == 'table' and type(o.type) == 'string' then ty = o.type end
  else
    ty = string.match(string.sub(d, 1, 4096), '"type"%s*:%s*"([^"\\]*)"') or ''
  end
  return ty
end

local function add(id, item, pos, due)
  local p, g, qa, d = '', '', '', ''
  if item then
    local a, b, c, _, rest = string.match(item, '^(%d*)\t([^\t]*)\t(%d*)\t(%d*)\t(.*)$')
    if a then p, g, qa, d = a, b, c, rest end
  end
  local n0 = #out
  out[n0 + 1] = id
  out[n0 + 2] = p
  out[n0 + 3] = g
  out[n0 + 4] = qa
  out[n0 + 5] = desc_type(d)
  out[n0 + 6] = #d
  out[n0 + 7] = pos
  out[n0 + 8] = due or ''
end

local function item_of(id) return redis.call('HGET', KEYS[3], id) end
local function matches(item)
  if not item then return fprio == nil and fgroup == nil end
  local p, g = string.match(item, '^(%d*)\t([^\t]*)\t')
  if fprio and tonumber(p) ~= fprio then return false end
  if fgroup and g ~= fgroup then return false end
  return true
end

if from == 'queue' then
  if counts[4] > off then
    local page = redis.call('LRANGE', KEYS[5], -off - lim, -off - 1)
    local pos = off
    for i = #page, 1, -1 do
      local e = page[i]
      local id = ''
      local ok, o = pcall(cjson.decode, e)
      if ok and type(o) == 'table' and type(o.id) == 'string' then id = o.id end
      local n0 = #out
      out[n0 + 1] = id
      out[n0 + 2] = ok and type(o) == 'table' and tonumber(o.priority) and
        string.format('%d', o.priority) or ''
      out[n0 + 3] = ok and type(o) == 'table' and type(o.group) == 'string' and o.group or ''
      out[n0 + 4] = ''
      out[n0 + 5] = ok and type(o) == 'table' and type(o.type) == 'string' and o.type or ''
      out[n0 + 6] = #e
      out[n0 + 7] = pos
      out[n0 + 8] = ''
      pos = pos + 1
    end
  end
  out[5] = counts[4]
  return out
end

local function zrange(a, b)
  if from == 'delayed' then return redis.call('ZRANGE', KEYS[2], a, b, 'WITHSCORES') end
  if from == 'parked' then return redis.call('ZRANGE', KEYS[4], a, b, 'WITHSCORES') end
  return redis.call('ZRANGE', KEYS[1], a, b, 'WITHSCORES')
end
local size = from == 'delayed' and counts[2] or (from == 'parked' and counts[3] or counts[1])
local function idof(m)
  if from == 'parked' then return string.match(m, '\1[^\1]*\1(.*)$') or m end
  return m
end

if fprio == nil and fgroup == nil then
  local page = zrange(off, off + lim - 1)
  for i = 1, #page, 2 do
    local id = idof(page[i])
    add(id, item_of(id), off + (i - 1) / 2, from == 'delayed' and page[i + 1] or nil)
  end
  out[5] = size
  return out
end

-- filtered: walk the set in order, at most cap members
local CHUNK, seen, matched, rank = 500, 0, 0, 0
while seen < cap do
  local page = zrange(rank, rank + CHUNK - 1)
  if #page == 0 then break end
  for i = 1, #page, 2 do
    local id = idof(page[i])
    local item = item_of(id)
    if matches(item) then
      if matched >= off and matched < off + lim then
        add(id, item, rank + (i - 1) / 2, from == 'delayed' and page[i + 1] or nil)
      end
      matched = matched + 1
    end
    seen = seen + 1
    if seen >= cap then break end
  end
  rank = rank + #page / 2
  if #page / 2 < CHUNK then break end
end
out[5] = matched
if seen >= cap and rank < size then out[6] = 1 end
return out
