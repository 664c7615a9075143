-- admin_dead_retry.lua — retries one dead letter (`kie dead retry`): moves its descriptor
-- back to the queue in one step.
-- Checks before any write (a script is not rolled back): the entry is still in <p>:dead,
-- the job hash has no task, is not finished, not uncertain and not back in the pool
-- (state "" or dead), and an entry whose task may exist needs allow_uncertain: its source
-- is uncertain, it says "mayHaveTask": true, or its job hash still carries mayHaveTask
-- (a createTask of unknown outcome that no recorded task resolved; job_uncertain.lua).
-- Then LREM the entry, LPUSH the descriptor (a producer's end: it waits its turn), reset
-- the job hash to queued with 0 attempts (ownership fields and the mark dropped, the
-- expiry removed), clear its recovery count, count dead_retried.
-- KEYS[1] <p>:dead        list of dead letters
-- KEYS[2] <p>:queue       list
-- KEYS[3] <p>:recoveries  hash, by the descriptor's SHA1
-- KEYS[4] <p>:stats       hash
-- KEYS[5] <p>:job:<jobId> job hash; absent when the entry names no valid job id
-- ARGV[1] the entry (exact bytes)
-- ARGV[2] the descriptor (raw)
-- ARGV[3] allow_uncertain: "1" or "0"
-- ARGV[4] dry_run: "1" or "0"
-- ARGV[5] the entry's source (e.g. "uncertain")
-- ARGV[6] now (epoch ms)
-- ARGV[7] "1" when the entry says "mayHaveTask": true, else "0"
-- Returns {outcome, why}: outcome retried | would_retry | refused | gone; or an error
-- reply when a key holds the wrong type.
local function kind(k) return redis.call('TYPE', k)['ok'] end
local function wrong(k, want)
  local ty = kind(k)
  if ty ~= want and ty ~= 'none' then return k .. ' holds a ' .. ty .. ', not a ' .. want end
  return nil
end
if kind(KEYS[1]) ~= 'list' then return {'gone', 'no dead letters'} end
local bad = wrong(KEYS[2], 'list') or wrong(KEYS[3], 'hash') or wrong(KEYS[4], 'hash')
if bad then return redis.error_reply(bad) end
if not redis.call('LPOS', KEYS[1], ARGV[1]) then
  return {'gone', 'the entry is no longer in the dead letters'}
end
local unsure = ARGV[5] == 'uncertain' or ARGV[7] == '1'
if KEYS[5] then
  bad = wrong(KEYS[5], 'hash')
  if bad then return redis.error_reply(bad) end
  local j = redis.call('HMGET', KEYS[5], 'state', 'taskId', 'mayHaveTask')
  local st, task = j[1] or '', j[2] or ''
  if j[3] then unsure = true end
  if task ~= '' then
    return {'refused', 'the job has task ' .. task ..
      ' (its result comes from that task; a retry would pay twice)'}
  end
  if st == 'completed' or st == 'failed' then
    return {'refused', 'the job finished as ' .. st}
  end
  if st == 'uncertain' then
    return {'refused', 'the job is uncertain: it waits for a task that may exist'}
  end
  if st ~= '' and st ~= 'dead' then
    return {'refused', 'the job is ' .. st .. ' (in the pool again)'}
  end
end
if unsure and ARGV[3] ~= '1' then
  return {'refused', 'createTask may have created a task for it: retry only with ' ..
    '--allow-uncertain, after checking KIE'}
end
if ARGV[4] == '1' then return {'would_retry', ''} end
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('LPUSH', KEYS[2], ARGV[2])
if KEYS[5] and redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('HSET', KEYS[5], 'state', 'queued', 'attempts', 0, 'updatedAt', ARGV[6],
    'retriedAt', ARGV[6])
  redis.call('HDEL', KEYS[5], 'owner', 'lease', 'error', 'raw', 'uncertainUntil', 'retryAt',
    'mayHaveTask', 'pending')
  redis.call('PERSIST', KEYS[5])
end
redis.call('HDEL', KEYS[3], redis.sha1hex(ARGV[2]))
redis.call('HINCRBY', KEYS[4], 'dead_retried', 1)
return {'retried', ''}
