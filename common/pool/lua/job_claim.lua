-- job_claim.lua — claims the job of a descriptor this consumer holds: one owner per job
-- id. A live lease, a recorded task, a finished job or an uncertain one all keep a second
-- descriptor from creating anything; a pause set after the runner looked puts it back.
-- KEYS[1] <p>:job:<jobId>   job hash
-- KEYS[2] <p>:recoveries    hash sha1(descriptor) -> times taken back from dead workers
-- KEYS[3] <p>:pause         pool-wide pause (string)
-- ARGV[1] consumer id (cid)
-- ARGV[2] lease in ms (Redis's clock)
-- ARGV[3] sha1 hex of the descriptor
-- ARGV[4] KIE_MAX_RECOVERIES
-- ARGV[5] job type
-- ARGV[6] replyTo ('' for none)
-- ARGV[7] the descriptor's meta JSON ('' for none)
-- ARGV[8] '1' when KIE will call back, else '0'
-- Returns {outcome, epoch, attempts, state before, taskId, owner before, recoveries,
-- mayHaveTask ('1' when a createTask of unknown outcome was never resolved by a task)};
-- outcome: claimed | takeover | has_task | finished | owned | uncertain |
-- too_many_recoveries | paused. Only claimed, takeover and too_many_recoveries write.
-- A job found `creating` without its owner is a takeover whatever its recovery count:
-- its createTask may have gone out, so it goes uncertain before any limit ends it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local j = redis.call('HMGET', KEYS[1], 'state', 'owner', 'epoch', 'lease', 'taskId',
  'attempts', 'createdAt', 'mayHaveTask')
local st, owner, epoch = j[1] or '', j[2] or '', tonumber(j[3] or '0') or 0
local lease, task, att = tonumber(j[4] or '0') or 0, j[5] or '', j[6] or '0'
local rec = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0') or 0
local unsure = j[8] and '1' or '0'
local function out(o) return {o, epoch, att, st, task, owner, rec, unsure} end
if st == 'completed' or st == 'failed' then return out('finished') end
if task ~= '' then return out('has_task') end
if owner ~= '' and owner ~= ARGV[1] and lease > now then return out('owned') end
if st == 'uncertain' then return out('uncertain') end
if redis.call('EXISTS', KEYS[3]) == 1 then return out('paused') end
epoch = epoch + 1
local nows = string.format('%d', now)
local f = {'owner', ARGV[1], 'epoch', epoch, 'lease', string.format('%d', now + tonumber(ARGV[2])),
  'workerId', ARGV[1], 'type', ARGV[5], 'replyTo', ARGV[6], 'jobMeta', ARGV[7],
  'callback', ARGV[8], 'updatedAt', nows}
if not j[7] then f[#f + 1] = 'createdAt' f[#f + 1] = nows end
-- a dead job's hash expires: claimed again, it is kept
if st == 'dead' then redis.call('PERSIST', KEYS[1]) end
local queued = st == '' or st == 'dead'
if queued and rec <= tonumber(ARGV[4]) then
  f[#f + 1] = 'state' f[#f + 1] = 'queued'
end
redis.call('HSET', KEYS[1], unpack(f))
-- its last owner died (or was cut off) inside createTask: a task may exist. Checked
-- before the recovery limit: such a job ends through uncertain, never dead-lettered as
-- if nothing had been sent
if st == 'creating' then return out('takeover') end
-- taken back from that many dead workers: this job may be what kills them
if rec > tonumber(ARGV[4]) then return out('too_many_recoveries') end
if queued then st = 'queued' end
return out('claimed')
