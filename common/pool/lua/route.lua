-- route.lua — routes a descriptor a consumer holds (the router's BLMOVE from <p>:queue,
-- or a runner's leftover) into the account's scheduling structure, with the ownership
-- table of docs/protocol.md, section 3: a live lease, a recorded task, a finished,
-- cancelled, uncertain or already queued job keep a second descriptor from running; a
-- job found `creating` without its owner is taken over (it goes uncertain); one taken back
-- from too many dead workers is taken to be dead-lettered. Otherwise the job is queued
-- (or delayed until notBefore) and the descriptor leaves the consumer's list in this same
-- step: a kill at any point loses nothing and schedules nothing twice. A cancel that came
-- first (<p>:cancel:<id>) ends the job cancelled here, with its job.cancelled event.
-- KEYS[1] <p>:job:<jobId>                job hash
-- KEYS[2] <p>:recoveries                 hash sha1(descriptor) -> times recovered
-- KEYS[3] <p>:processing:<cid>           the consumer's processing list
-- KEYS[4] <p>:sched:<acct>:ready         zset jobId -> (9 - priority) * 1e12 + tag
-- KEYS[5] <p>:sched:<acct>:delayed       zset jobId -> due (epoch ms)
-- KEYS[6] <p>:sched:<acct>:items         hash jobId -> "prio\tgroup\tqueuedAt\ttag\tdescriptor"
-- KEYS[7] <p>:sched:<acct>:state         hash v<p> (virtual time), n<p> (ready), ...
-- KEYS[8] <p>:sched:<acct>:gtag          hash "<p>|<group>" -> the group's last tag
-- KEYS[9] <p>:sched:<acct>:gcount        hash group -> jobs queued or delayed
-- KEYS[10] <p>:sched:<acct>:inflight     hash group -> jobs between claim and final state
-- KEYS[11] <p>:sched:<acct>:picked       hash jobId -> group (picked, not yet started)
-- KEYS[12] <p>:group:weight              hash group -> weight (1..1000, default 1)
-- KEYS[13] <p>:sched:<acct>:wake         list: a token wakes an idle runner
-- KEYS[14] <p>:cancel:<jobId>            an early cancel's marker
-- KEYS[15] <p>:stats                     hash of counters
-- KEYS[16] <p>:results                   list of completion events
-- KEYS[17] <p>:hist:m:<minute>          history, this minute (i21, lib/history.lua)
-- KEYS[18] <p>:hist:d:<yyyymmdd>        history, this day (i21)
-- KEYS[19] replyTo list (optional)
-- ARGV[1] the descriptor
-- ARGV[2] jobId
-- ARGV[3] consumer id (cid)
-- ARGV[4] lease in ms
-- ARGV[5] KIE_MAX_RECOVERIES
-- ARGV[6] job type
-- ARGV[7] replyTo ('' for none)
-- ARGV[8] the descriptor's meta JSON ('' for none)
-- ARGV[9] '1' when KIE will call back, else '0'
-- ARGV[10] priority (0..9)
-- ARGV[11] group ('' for the default group)
-- ARGV[12] notBefore (epoch ms, '0' for none)
-- ARGV[13] '1': claim the job for this consumer instead of queueing it (its prompt
--          cannot be built: it is dead-lettered next), else '0'
-- ARGV[14] the events channel (<p>:events; a channel, not a key)
-- ARGV[15] KIE_RESULTS_MAX
-- ARGV[16] KIE_REPLY_MAX
-- ARGV[17] KIE_REPLY_TTL_S
-- ARGV[18] TTL of a finished job hash (s)
-- ARGV[19] (optional, i20-accounts) the account's alias, kept in the job hash
-- Returns {outcome, epoch, attempts, state before, taskId, owner before, recoveries,
-- mayHaveTask}; outcome: queued | delayed | cancelled | claimed | takeover | has_task |
-- finished | owned | uncertain | queued_already | too_many_recoveries | not_held (the
-- descriptor is not in the consumer's list: a run whose reply was lost released it). queued, delayed
-- and cancelled release the descriptor; claimed, takeover and too_many_recoveries make
-- this consumer the job's owner; the others write nothing.
--#include emit.lua
local SPAN = 1e12
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nows = string.format('%d', now)
local id = ARGV[2]
local j = redis.call('HMGET', KEYS[1], 'state', 'owner', 'epoch', 'lease', 'taskId',
  'attempts', 'createdAt', 'mayHaveTask', 'queuedAt')
-- run again after its reply was lost: the first run released the copy already
if not redis.call('LPOS', KEYS[3], ARGV[1]) then
  return {'not_held', 0, '0', j[1] or '', j[5] or '', j[2] or '', 0, '0'}
end
local st, owner, epoch = j[1] or '', j[2] or '', tonumber(j[3] or '0') or 0
local lease, task, att = tonumber(j[4] or '0') or 0, j[5] or '', j[6] or '0'
local rec = tonumber(redis.call('HGET', KEYS[2], redis.sha1hex(ARGV[1])) or '0') or 0
local unsure = j[8] and '1' or '0'
local function out(o) return {o, epoch, att, st, task, owner, rec, unsure} end
if st == 'completed' or st == 'failed' or st == 'cancelled' then return out('finished') end
if task ~= '' then return out('has_task') end
if owner ~= '' and owner ~= ARGV[3] and lease > now then return out('owned') end
if st == 'uncertain' then return out('uncertain') end
if redis.call('ZSCORE', KEYS[4], id) or redis.call('ZSCORE', KEYS[5], id) then
  return out('queued_already')
end
-- picked by a runner that died before it started the job: its group's slot comes back
local pg = redis.call('HGET', KEYS[11], id)
if pg then
  redis.call('HDEL', KEYS[11], id)
  if redis.call('HINCRBY', KEYS[10], pg, -1) <= 0 then redis.call('HDEL', KEYS[10], pg) end
end
local base = {'type', ARGV[6], 'replyTo', ARGV[7], 'jobMeta', ARGV[8], 'callback', ARGV[9],
  'priority', ARGV[10], 'group', ARGV[11], 'updatedAt', nows}
if not j[7] then base[#base + 1] = 'createdAt' base[#base + 1] = nows end
local queued_at = j[9] or nows
if not j[9] then base[#base + 1] = 'queuedAt' base[#base + 1] = nows end
-- >>> i20-accounts: cancel, position and the pollers find the job's account
if ARGV[19] and ARGV[19] ~= '' then base[#base + 1] = 'account' base[#base + 1] = ARGV[19] end
-- <<<
-- a dead job's hash expires: routed again, it is kept
if st == 'dead' then redis.call('PERSIST', KEYS[1]) end

-- i21: the history counters (a cancel at routing counts as cancelled)
--#include history.lua

-- cancelled before it arrived: it ends here, never reaching KIE
if redis.call('EXISTS', KEYS[14]) == 1 and st ~= 'creating' then
  local reply = KEYS[19]
  if reply and not keytype_ok(reply, 'list') then reply = nil end
  redis.call('DEL', KEYS[14])
  base[#base + 1] = 'state' base[#base + 1] = 'cancelled'
  base[#base + 1] = 'finishedAt' base[#base + 1] = nows
  redis.call('HSET', KEYS[1], unpack(base))
  redis.call('HDEL', KEYS[1], 'owner', 'lease', 'raw')
  redis.call('EXPIRE', KEYS[1], ARGV[18])
  redis.call('LREM', KEYS[3], 1, ARGV[1])
  redis.call('HDEL', KEYS[2], redis.sha1hex(ARGV[1]))
  redis.call('HINCRBY', KEYS[15], 'cancelled', 1)
  hist_add(KEYS[17], KEYS[18], {'cancelled'}) -- i21
  -- the job.cancelled event, emitted by lib/emit.lua as every event is (kie_functions.lua's
  -- cancel writes the same event)
  local ev = string.format(
    [[{"v":1,"event":"job.cancelled","status":"cancelled","jobId":%s,"taskId":null,]] ..
    [["type":%s,"error":"cancelled before it started","attempts":%d,"queuedAt":%s,]] ..
    [["startedAt":null,"finishedAt":%s,"meta":%s}]],
    cjson.encode(id), cjson.encode(ARGV[6]), tonumber(att) or 0, queued_at, nows,
    ARGV[8] ~= '' and ARGV[8] or 'null')
  emit(KEYS[16], reply, ev, ARGV[14], tonumber(ARGV[15]), tonumber(ARGV[16]), ARGV[17])
  return out('cancelled')
end

-- takeover, too many recoveries, or a descriptor that cannot run: this consumer owns it
local takeover = st == 'creating'
if takeover or rec > tonumber(ARGV[5]) or ARGV[13] == '1' then
  epoch = epoch + 1
  base[#base + 1] = 'owner' base[#base + 1] = ARGV[3]
  base[#base + 1] = 'epoch' base[#base + 1] = epoch
  base[#base + 1] = 'lease' base[#base + 1] = string.format('%d', now + tonumber(ARGV[4]))
  base[#base + 1] = 'workerId' base[#base + 1] = ARGV[3]
  if not takeover and (st == '' or st == 'dead') then
    base[#base + 1] = 'state' base[#base + 1] = 'queued'
  end
  redis.call('HSET', KEYS[1], unpack(base))
  -- its last owner died (or was cut off) inside createTask: a task may exist. Checked
  -- before the recovery limit: such a job ends through uncertain
  if takeover then return out('takeover') end
  if rec > tonumber(ARGV[5]) then return out('too_many_recoveries') end
  return out('claimed')
end

-- queued, or delayed until notBefore
local p, g = tonumber(ARGV[10]), ARGV[11]
local nb = tonumber(ARGV[12]) or 0
local outcome = 'queued'
local tag = ''
if nb > now then
  outcome = 'delayed'
  redis.call('ZADD', KEYS[5], nb, id)
  -- an idle runner looks once, and learns when to look again
  if redis.call('LLEN', KEYS[13]) == 0 then redis.call('LPUSH', KEYS[13], '1') end
else
  -- start-time fair queuing: a job's tag is max(V_p, the group's last tag) + 1000/weight
  local w = tonumber(redis.call('HGET', KEYS[12], g) or '1') or 1
  local inc = math.max(1, math.floor(1000 / w))
  local gk = p .. '|' .. g
  local v = tonumber(redis.call('HGET', KEYS[7], 'v' .. p) or '0') or 0
  local last = tonumber(redis.call('HGET', KEYS[8], gk) or '0') or 0
  local tg = math.max(v, last) + inc
  redis.call('HSET', KEYS[8], gk, string.format('%d', tg))
  tag = string.format('%d', tg)
  redis.call('ZADD', KEYS[4], (9 - p) * SPAN + tg, id)
  redis.call('HINCRBY', KEYS[7], 'n' .. p, 1)
  if redis.call('LLEN', KEYS[13]) == 0 then redis.call('LPUSH', KEYS[13], '1') end
end
redis.call('HSET', KEYS[6], id, p .. '\t' .. g .. '\t' .. queued_at .. '\t' .. tag .. '\t' ..
  ARGV[1])
redis.call('HINCRBY', KEYS[9], g, 1)
base[#base + 1] = 'state' base[#base + 1] = outcome
base[#base + 1] = 'raw' base[#base + 1] = ARGV[1]
redis.call('HSET', KEYS[1], unpack(base))
redis.call('HDEL', KEYS[1], 'owner', 'lease')
redis.call('LREM', KEYS[3], 1, ARGV[1])
st = outcome
return out(outcome)
