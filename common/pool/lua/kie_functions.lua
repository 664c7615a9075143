#!lua name=kie
-- kie_functions.lua — the Redis Functions library "kie" (Redis 7): what any language runs
-- with one command (docs/protocol.md, "Cancel" and "Where is my job?"). The worker loads
-- it at start (FUNCTION LOAD REPLACE when kie_version answers another version). Both
-- functions take the same keys:
--   FCALL kie_cancel 11 <p>:job:<id> <p>:cancel:<id> <S>:ready <S>:delayed <S>:items
--         <S>:state <S>:gcount <p>:stats <p>:results <S>:parked <replyTo or <p>:job:<id>> <id>
--   FCALL_RO kie_position 11 (the same keys) <id>
-- with <S> = <p>:sched:default. Settings the functions need (the events channel, list
-- caps, TTLs, the account's createTask rate) are in <S>:state, written by each worker
-- at start.
-- KEYS[1] <p>:job:<jobId>                job hash
-- KEYS[2] <p>:cancel:<jobId>             an early cancel's marker (string with a TTL)
-- KEYS[3] <p>:sched:<acct>:ready         zset jobId -> (9 - priority) * 1e12 + tag
-- KEYS[4] <p>:sched:<acct>:delayed       zset jobId -> due (epoch ms)
-- KEYS[5] <p>:sched:<acct>:items         hash jobId -> "prio\tgroup\tqueuedAt\ttag\tdescriptor"
-- KEYS[6] <p>:sched:<acct>:state         hash n<p>, pace buckets, settings
-- KEYS[7] <p>:sched:<acct>:gcount        hash group -> jobs queued or delayed
-- KEYS[8] <p>:stats                      hash of counters
-- KEYS[9] <p>:results                    list of completion events
-- KEYS[10] <p>:sched:<acct>:parked       zset "group\1score\1jobId": jobs of capped groups
-- KEYS[11] the job's replyTo list (when it has one; else any key, e.g. KEYS[1] again)
-- KEYS[12] <p>:hist:m:<minute>         optional (i21): kie_cancel counts a cancel in the
-- KEYS[13] <p>:hist:d:<yyyymmdd>       history counters (lib/history.lua)
-- ARGV[1] jobId
-- Returns (each function) a JSON object as a string: kie_cancel {"result": cancelled |
-- started | finished | remembered | reply_to_needed, "jobId", "state", "replyTo"?};
-- kie_position {"jobId", "state", "position", "eta", "priority", "group", "queuedAt",
-- "startedAt", "pace"}; kie_version the library's version.
local VERSION = '4'
local SPAN = 1e12
--#include history.lua
-- emit(): the one emission of an event (lib/emit.lua), shared with the scripts
--#include emit.lua

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function conf(KEYS, name, default)
  return tonumber(redis.call('HGET', KEYS[6], name) or '') or default
end

-- The job's account (the job hash's account, written at routing when the pool has several),
-- when KEYS[3] is not its structure's ready set (<p>:sched:<account>:ready): the caller
-- passed another account's structure. nil when they match, or the pool has one account.
local function other_account(KEYS, acct)
  if not acct or acct == '' then return nil end
  local want = ':sched:' .. acct .. ':ready'
  if string.sub(KEYS[3], -#want) == want then return nil end
  return acct
end

local function cancel(KEYS, ARGV)
  local id = ARGV[1]
  local now = now_ms()
  local j = redis.call('HMGET', KEYS[1], 'state', 'owner', 'lease', 'taskId', 'queuedAt',
    'type', 'jobMeta', 'replyTo', 'attempts', 'account')
  local st = j[1]
  local function answer(res, extra)
    local o = {result = res, jobId = id, state = st or cjson.null}
    if extra then for k, v in pairs(extra) do o[k] = v end end
    return cjson.encode(o)
  end
  if not st then
    -- not arrived yet: remembered, and routing ends it cancelled when it comes
    redis.call('SET', KEYS[2], '1', 'EX', conf(KEYS, 'cancelTtlS', 86400))
    return answer('remembered')
  end
  if st == 'completed' or st == 'failed' or st == 'dead' or st == 'cancelled' then
    return answer('finished')
  end
  -- createTask was sent (or is being sent): KIE cannot cancel a task
  if (j[4] or '') ~= '' or st == 'creating' or st == 'polling' or st == 'uncertain' or
      ((j[2] or '') ~= '' and (tonumber(j[3] or '0') or 0) > now) then
    return answer('started')
  end
  local reply_to = j[8] or ''
  if reply_to ~= '' and KEYS[11] ~= reply_to then
    return answer('reply_to_needed', {replyTo = reply_to})
  end
  -- several accounts: the keys must be the job's account's structure
  local acct = other_account(KEYS, j[10])
  if acct then return answer('account_needed', {account = acct}) end
  if reply_to ~= '' and not keytype_ok(KEYS[11], 'list') then reply_to = '' end
  -- out of the structure (ready, delayed, or parked at its group's cap)
  local it = redis.call('HGET', KEYS[5], id)
  if it then
    local p, g, _, tg = string.match(it, '^(%d)\t([^\t]*)\t(%d*)\t(%d*)\t')
    p = tonumber(p)
    if redis.call('ZREM', KEYS[3], id) == 1 then
      redis.call('HINCRBY', KEYS[6], 'n' .. p, -1)
    elseif tg ~= '' then
      redis.call('ZREM', KEYS[10], g .. '\1' .. string.format('%016d', (9 - p) * SPAN +
        tonumber(tg)) .. '\1' .. id)
    end
    redis.call('ZREM', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    if redis.call('HINCRBY', KEYS[7], g, -1) <= 0 then redis.call('HDEL', KEYS[7], g) end
  end
  local nows = string.format('%d', now)
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'updatedAt', nows, 'finishedAt', nows)
  redis.call('HDEL', KEYS[1], 'owner', 'lease', 'raw')
  redis.call('EXPIRE', KEYS[1], conf(KEYS, 'recordTtlS', 604800))
  redis.call('HINCRBY', KEYS[8], 'cancelled', 1)
  -- i21: the history counters (when the caller gave their keys)
  if KEYS[13] then hist_add(KEYS[12], KEYS[13], {'cancelled'}) end
  -- the job.cancelled event, emitted by lib/emit.lua as every event is
  local ev = string.format(
    [[{"v":1,"event":"job.cancelled","status":"cancelled","jobId":%s,"taskId":null,]] ..
    [["type":%s,"error":"cancelled before it started","attempts":%d,"queuedAt":%s,]] ..
    [["startedAt":null,"finishedAt":%s,"meta":%s}]],
    cjson.encode(id), cjson.encode(j[6] or ''), tonumber(j[9] or '0') or 0,
    j[5] or 'null', nows, (j[7] or '') ~= '' and j[7] or 'null')
  -- no channel written yet (no worker started since the keys were made): nobody listens
  local rk = nil
  if reply_to ~= '' then
    rk = KEYS[11]
  end
  emit(KEYS[9], rk, ev, redis.call('HGET', KEYS[6], 'chan') or '',
    conf(KEYS, 'resultsMax', 10000), conf(KEYS, 'replyMax', 1000),
    conf(KEYS, 'replyTtlS', 604800))
  st = 'cancelled'
  return answer('cancelled')
end

-- picks per second: the account's rate, or the pool's measured pace over the last
-- minute when lower (5 s buckets written by pick.lua: count, bucket number, first pick)
local function pace(KEYS, now)
  local limit = conf(KEYS, 'createLimit', 20) / conf(KEYS, 'createWindowMs', 10000) * 1000
  local b = math.floor(now / 5000)
  local n, first = 0, nil
  for k = 0, 11 do
    local bt = tonumber(redis.call('HGET', KEYS[6], 'bt' .. k) or '') or -1
    if bt > b - 12 and bt <= b then
      n = n + (tonumber(redis.call('HGET', KEYS[6], 'b' .. k) or '0') or 0)
      local f = tonumber(redis.call('HGET', KEYS[6], 'bf' .. k) or '') or now
      if not first or f < first then first = f end
    end
  end
  -- too short a run to measure (a few picks, or under 3 s): the account's rate
  if not first or n < 5 or now - first < 3000 then return limit end
  return math.min(limit, (n - 1) * 1000 / (now - first))
end

local function position(KEYS, ARGV)
  local id = ARGV[1]
  local now = now_ms()
  local j = redis.call('HMGET', KEYS[1], 'state', 'queuedAt', 'priority', 'group',
    'startedAt', 'taskId', 'account')
  local o = {jobId = id, state = j[1] or 'unknown', position = cjson.null, eta = cjson.null,
    priority = tonumber(j[3] or '') or cjson.null, group = j[4] or cjson.null,
    queuedAt = tonumber(j[2] or '') or cjson.null,
    startedAt = tonumber(j[5] or '') or cjson.null, taskId = j[6] or cjson.null}
  if not j[1] then
    if redis.call('EXISTS', KEYS[2]) == 1 then o.state = 'cancel_remembered' end
    return cjson.encode(o)
  end
  -- several accounts: a position is only read in the job's account's structure
  local acct = other_account(KEYS, j[7])
  if acct then
    o.account = acct
    o.error = 'account_needed'
    return cjson.encode(o)
  end
  local pc = pace(KEYS, now)
  o.pace = math.floor(pc * 1000 + 0.5) / 1000
  local rank = redis.call('ZRANK', KEYS[3], id)
  if rank then
    o.position = rank
    o.eta = math.floor(now + (rank + 1) * 1000 / pc)
  else
    local due = redis.call('ZSCORE', KEYS[4], id)
    if due then
      -- delayed: the ready jobs at its priority and above go first once it is due
      local p = tonumber(j[3] or '5') or 5
      local ahead = redis.call('ZCOUNT', KEYS[3], '-inf', '(' .. string.format('%d', (10 - p) * SPAN))
      o.position = ahead
      o.eta = math.floor(math.max(tonumber(due), now + (ahead + 1) * 1000 / pc))
      o.due = tonumber(due)
    end
  end
  return cjson.encode(o)
end

redis.register_function('kie_cancel', cancel)
redis.register_function{function_name = 'kie_position', callback = position,
  flags = {'no-writes'}}
redis.register_function{function_name = 'kie_version', callback = function() return VERSION end,
  flags = {'no-writes'}}
