-- route.lua — routes a descriptor a consumer holds (the router's BLMOVE from <p>:queue,
-- or a runner's leftover) into the account's scheduling structure, with the ownership
-- table of docs/protocol.md, section 3: a live lease, a recorded task, a finished,
-- cancelled, uncertain or already queued job keep a second descriptor from running; a
-- job found `creating` without its owner is taken over (it goes uncertain); one taken back
-- from too many dead workers is taken to be dead-lettered. Otherwise the job is queued
-- (or delayed until notBefore) and the descriptor leaves the consumer's list in this same
-- step: a kill at any point loses nothing and schedules nothing twice. A cancel that came
-- first (<p>:cancel:<id>) ends the job cancelled here, with its job.cancelled event.
-- Routes a batch, in order, each descriptor as if routed alone; then moves up to ARGV[10]
-- more from <p>:queue into the consumer's list (oldest first, RIGHT to LEFT as BLMOVE
-- does; stopping before one longer than ARGV[11] bytes, which the next BLMOVE reads
-- streamed) and returns them: the router's next batch, claimed as a BLMOVE's would be (a
-- kill leaves them in its list, recovered like any claimed descriptor). A backlog, the
-- common case in front of a 2-a-second API, is routed with one call per batch.
-- KEYS[1] <p>:job:                       prefix of job hashes (a job's: .. jobId)
-- KEYS[2] <p>:recoveries                 hash sha1(descriptor) -> times recovered
-- KEYS[3] <p>:processing:<cid>           the consumer's processing list
-- KEYS[4] <p>:sched:<acct>:ready         zset jobId -> (9 - priority) * 1e12 + tag
-- KEYS[5] <p>:sched:<acct>:delayed       zset jobId -> due (epoch ms)
-- KEYS[6] <p>:sched:<acct>:items         hash jobId -> "prio\tgroup\tqueuedAt\ttag\tdescriptor"
-- KEYS[7] <p>:sched:<acct>:state         hash v<p> (virtual time), n<p> (ready), ...
-- KEYS[8] <p>:sched:<acct>:gtag          hash "<p>|<group>" -> the group's last tag
-- KEYS[9] <p>:sched:<acct>:gcount        hash group -> jobs queued or delayed
-- KEYS[10] <p>:sched:<acct>:inflight     hash group -> jobs between claim and final state
-- KEYS[11] <p>:sched:<acct>:picked       hash jobId -> group (picked by an older worker, not
--                                        yet started)
-- KEYS[12] <p>:group:weight              hash group -> weight (1..1000, default 1)
-- KEYS[13] <p>:sched:<acct>:wake         list: a token wakes an idle runner
-- KEYS[14] <p>:cancel:                   prefix of early cancels' markers (.. jobId)
-- KEYS[15] <p>:stats                     hash of counters
-- KEYS[16] <p>:results                   list of completion events
-- KEYS[17] <p>:queue                    the producers' list
-- KEYS[18] <p>:hist:m:<minute>          history, this minute (i21, lib/history.lua)
-- KEYS[19] <p>:hist:d:<yyyymmdd>        history, this day (i21)
-- KEYS[20..19+m] the replyTo lists of the batch's jobs that have one (ARGV names which)
-- ARGV[1] consumer id (cid)
-- ARGV[2] lease in ms
-- ARGV[3] KIE_MAX_RECOVERIES
-- ARGV[4] the events channel (<p>:events; a channel, not a key)
-- ARGV[5] KIE_RESULTS_MAX
-- ARGV[6] KIE_REPLY_MAX
-- ARGV[7] KIE_REPLY_TTL_S
-- ARGV[8] TTL of a finished job hash (s)
-- ARGV[9] n, the descriptors in the batch
-- ARGV[10] the most descriptors to move from <p>:queue after routing ('0': none)
-- ARGV[11] the most bytes of one moved
-- ARGV[12] the account's alias, kept in the job hash ('' none: one account; i20-accounts)
-- then 12 per descriptor, at b = 12 + 12 (i - 1):
-- ARGV[b+1] the descriptor
-- ARGV[b+2] jobId
-- ARGV[b+3] job type
-- ARGV[b+4] its replyTo list: k when it is KEYS[19+k], '0' for none
-- ARGV[b+5] the descriptor's meta JSON ('' for none)
-- ARGV[b+6] '1' when KIE will call back, else '0'
-- ARGV[b+7] priority (0..9)
-- ARGV[b+8] group ('' for the default group)
-- ARGV[b+9] notBefore (epoch ms, '0' for none)
-- ARGV[b+10] '1': claim the job for this consumer instead of queueing it (its prompt
--          cannot be built: it is dead-lettered next), else '0'
-- ARGV[b+11] the model its task will name (kept in the job hash: model)
-- ARGV[b+12] that model's configured estimate in credits (KIE_MODEL_CREDITS; kept:
--          modelCredits), for the budget reservation the pick makes
-- Returns, per descriptor in order, {outcome, epoch, attempts, state before, taskId,
-- owner before, recoveries, mayHaveTask}; outcome: queued | delayed | cancelled | claimed | takeover |
-- has_task | finished | owned | uncertain | queued_already | too_many_recoveries | not_held
-- (the descriptor is not in the consumer's list: a run whose reply was lost released it).
-- queued, delayed and cancelled release the descriptor; claimed, takeover and
-- too_many_recoveries make this consumer the job's owner; the others write nothing. Then
-- one more element: the descriptors moved, oldest first.
--#include emit.lua
--#include history.lua
local SPAN = 1e12
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nows = string.format('%d', now)
-- read once per batch: the weights, virtual times and groups' last tags seen (a group's
-- tag is written on each job and kept here)
local weights, vtimes, gtags = {}, {}, {}
local woken = false
local function wake()
  if not woken and redis.call('LLEN', KEYS[13]) == 0 then redis.call('LPUSH', KEYS[13], '1') end
  woken = true
end

-- one descriptor (a = its ARGV values): the outcome tuple
local function route_one(a)
  local id = a.id
  local kjob = KEYS[1] .. id
  local j = redis.call('HMGET', kjob, 'state', 'owner', 'epoch', 'lease', 'taskId',
    'attempts', 'createdAt', 'mayHaveTask', 'queuedAt')
  -- run again after its reply was lost: the first run released the copy already
  if not redis.call('LPOS', KEYS[3], a.raw) then
    return {'not_held', 0, '0', j[1] or '', j[5] or '', j[2] or '', 0, '0'}
  end
  local st, owner, epoch = j[1] or '', j[2] or '', tonumber(j[3] or '0') or 0
  local lease, task, att = tonumber(j[4] or '0') or 0, j[5] or '', j[6] or '0'
  local rec = tonumber(redis.call('HGET', KEYS[2], redis.sha1hex(a.raw)) or '0') or 0
  local unsure = j[8] and '1' or '0'
  local function out(o) return {o, epoch, att, st, task, owner, rec, unsure} end
  if st == 'completed' or st == 'failed' or st == 'cancelled' then return out('finished') end
  if task ~= '' then return out('has_task') end
  if owner ~= '' and owner ~= ARGV[1] and lease > now then return out('owned') end
  if st == 'uncertain' then return out('uncertain') end
  -- a job without a hash is in no structure (a queued job's hash does not expire)
  if j[1] and (redis.call('ZSCORE', KEYS[4], id) or redis.call('ZSCORE', KEYS[5], id)) then
    return out('queued_already')
  end
  -- picked by a runner that died before it started the job: its group's slot comes back
  -- (a job without a hash was never routed, so never picked)
  local pg = j[1] and redis.call('HGET', KEYS[11], id)
  if pg then
    redis.call('HDEL', KEYS[11], id)
    if redis.call('HINCRBY', KEYS[10], pg, -1) <= 0 then redis.call('HDEL', KEYS[10], pg) end
  end
  local base = {'type', a.type, 'replyTo', a.reply_to, 'jobMeta', a.meta,
    'callback', a.callback, 'priority', a.prio, 'group', a.group, 'updatedAt', nows,
    'model', a.model, 'modelCredits', a.est}
  if not j[7] then base[#base + 1] = 'createdAt' base[#base + 1] = nows end
  local queued_at = j[9] or nows
  if not j[9] then base[#base + 1] = 'queuedAt' base[#base + 1] = nows end
  -- i20-accounts: cancel, position and the pollers find the job's account
  if ARGV[12] ~= '' then base[#base + 1] = 'account' base[#base + 1] = ARGV[12] end
  -- a dead job's hash expires: routed again, it is kept
  if st == 'dead' then redis.call('PERSIST', kjob) end

  -- cancelled before it arrived: it ends here, never reaching KIE
  local kcancel = KEYS[14] .. id
  if redis.call('EXISTS', kcancel) == 1 and st ~= 'creating' then
    local reply = nil
    if a.rk > 0 then
      reply = KEYS[19 + a.rk]
    end
    if reply and not keytype_ok(reply, 'list') then reply = nil end
    redis.call('DEL', kcancel)
    base[#base + 1] = 'state' base[#base + 1] = 'cancelled'
    base[#base + 1] = 'finishedAt' base[#base + 1] = nows
    redis.call('HSET', kjob, unpack(base))
    redis.call('HDEL', kjob, 'owner', 'lease', 'raw')
    redis.call('EXPIRE', kjob, ARGV[8])
    redis.call('LREM', KEYS[3], 1, a.raw)
    redis.call('HDEL', KEYS[2], redis.sha1hex(a.raw))
    redis.call('HINCRBY', KEYS[15], 'cancelled', 1)
    hist_add(KEYS[18], KEYS[19], {'cancelled'}) -- i21
    -- the job.cancelled event, emitted by lib/emit.lua as every event is (kie_functions.lua's
    -- cancel writes the same event)
    local ev = string.format(
      [[{"v":1,"event":"job.cancelled","status":"cancelled","jobId":%s,"taskId":null,]] ..
      [["type":%s,"error":"cancelled before it started","attempts":%d,"queuedAt":%s,]] ..
      [["startedAt":null,"finishedAt":%s,"meta":%s}]],
      cjson.encode(id), cjson.encode(a.type), tonumber(att) or 0, queued_at, nows,
      a.meta ~= '' and a.meta or 'null')
    emit(KEYS[16], reply, ev, ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7])
    return out('cancelled')
  end

  -- takeover, too many recoveries, or a descriptor that cannot run: this consumer owns it
  local takeover = st == 'creating'
  if takeover or rec > tonumber(ARGV[3]) or a.own == '1' then
    epoch = epoch + 1
    base[#base + 1] = 'owner' base[#base + 1] = ARGV[1]
    base[#base + 1] = 'epoch' base[#base + 1] = epoch
    base[#base + 1] = 'lease' base[#base + 1] = string.format('%d', now + tonumber(ARGV[2]))
    base[#base + 1] = 'workerId' base[#base + 1] = ARGV[1]
    if not takeover and (st == '' or st == 'dead') then
      base[#base + 1] = 'state' base[#base + 1] = 'queued'
    end
    redis.call('HSET', kjob, unpack(base))
    -- its last owner died (or was cut off) inside createTask: a task may exist. Checked
    -- before the recovery limit: such a job ends through uncertain
    if takeover then return out('takeover') end
    if rec > tonumber(ARGV[3]) then return out('too_many_recoveries') end
    return out('claimed')
  end

  -- queued, or delayed until notBefore
  local p, g = tonumber(a.prio), a.group
  local nb = tonumber(a.nb) or 0
  local outcome = 'queued'
  local tag = ''
  if nb > now then
    outcome = 'delayed'
    redis.call('ZADD', KEYS[5], nb, id)
    -- an idle runner looks once, and learns when to look again
    wake()
  else
    -- start-time fair queuing: a job's tag is max(V_p, the group's last tag) + 1000/weight
    if not weights[g] then
      weights[g] = tonumber(redis.call('HGET', KEYS[12], g) or '1') or 1
    end
    local inc = math.max(1, math.floor(1000 / weights[g]))
    local gk = p .. '|' .. g
    if not vtimes[p] then
      vtimes[p] = tonumber(redis.call('HGET', KEYS[7], 'v' .. p) or '0') or 0
    end
    if not gtags[gk] then gtags[gk] = tonumber(redis.call('HGET', KEYS[8], gk) or '0') or 0 end
    local tg = math.max(vtimes[p], gtags[gk]) + inc
    gtags[gk] = tg
    redis.call('HSET', KEYS[8], gk, string.format('%d', tg))
    tag = string.format('%d', tg)
    redis.call('ZADD', KEYS[4], (9 - p) * SPAN + tg, id)
    redis.call('HINCRBY', KEYS[7], 'n' .. p, 1)
    wake()
  end
  redis.call('HSET', KEYS[6], id, p .. '\t' .. g .. '\t' .. queued_at .. '\t' .. tag .. '\t' ..
    a.raw)
  redis.call('HINCRBY', KEYS[9], g, 1)
  base[#base + 1] = 'state' base[#base + 1] = outcome
  base[#base + 1] = 'raw' base[#base + 1] = a.raw
  redis.call('HSET', kjob, unpack(base))
  redis.call('HDEL', kjob, 'owner', 'lease')
  redis.call('LREM', KEYS[3], 1, a.raw)
  return out(outcome)
end

local res = {}
for i = 1, tonumber(ARGV[9]) do
  local b = 12 + 12 * (i - 1)
  local ri = tonumber(ARGV[b + 4]) or 0
  res[i] = route_one({raw = ARGV[b + 1], id = ARGV[b + 2], type = ARGV[b + 3], rk = ri,
    reply_to = ri > 0 and KEYS[19 + ri] or '', meta = ARGV[b + 5], callback = ARGV[b + 6],
    prio = ARGV[b + 7], group = ARGV[b + 8], nb = ARGV[b + 9], own = ARGV[b + 10],
    model = ARGV[b + 11], est = ARGV[b + 12]})
end
-- the next batch
local moved, max = {}, tonumber(ARGV[11])
for i = 1, tonumber(ARGV[10]) do
  local v = redis.call('LINDEX', KEYS[17], -1)
  if not v or #v > max then break end
  redis.call('LMOVE', KEYS[17], KEYS[3], 'RIGHT', 'LEFT')
  moved[i] = v
end
res[#res + 1] = moved
return res
