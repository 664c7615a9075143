-- pick.lua — the pick rule (docs/protocol.md, "Who goes first"), run by a runner that
-- holds a createTask slot: promotes the delayed jobs that are due, gives capped groups
-- with room their parked jobs back, then takes the ready job with the highest priority
-- and, within it, the smallest start tag (start-time fair queuing across groups); every
-- K-th pick goes instead to the lower priority level served least recently (the reserved
-- share: no job waits for ever). A job whose group is at its cap is parked on the way.
-- The descriptor goes into the runner's processing list in this same step, so recovery
-- is unchanged, and the job is started in it too (issue 19: the pick is one script; it
-- was pick.lua then job_start.lua): one owner per job id, then state creating with one
-- more attempt, and its estimated cost reserved against today's budgets (lib/budget.lua).
-- A job cancelled, finished, given a task, held by another live consumer or uncertain
-- since it was queued is not started (the runner releases its copy); one found creating
-- without its owner is taken over (it goes uncertain next); one whose estimate would pass
-- a budget is not started and spends no attempt (the runner parks it over_budget). A
-- pause is read first, so no job is picked after it. Run again after its reply was lost
-- (the same call: ARGV[4]), it answers the job it started then, found at the head of the
-- runner's list.
-- O(log N) in the ready jobs: one ZRANGE of the head, plus one per parked job.
-- KEYS[1] <p>:sched:<acct>:ready         zset jobId -> (9 - priority) * 1e12 + tag
-- KEYS[2] <p>:sched:<acct>:delayed       zset jobId -> due (epoch ms)
-- KEYS[3] <p>:sched:<acct>:items         hash jobId -> "prio\tgroup\tqueuedAt\ttag\tdescriptor"
-- KEYS[4] <p>:sched:<acct>:state         hash v<p>, n<p>, s<p> (last served), picks, pace
-- KEYS[5] <p>:sched:<acct>:gtag          hash "<p>|<group>" -> its last tag, while it has work
-- KEYS[6] <p>:sched:<acct>:gcount        hash group -> jobs queued or delayed
-- KEYS[7] <p>:sched:<acct>:inflight      hash group -> jobs between claim and final state
-- KEYS[8] <p>:sched:<acct>:picked        hash jobId -> group (no longer written: picked and
--                                        started are one step; route.lua reads old entries)
-- KEYS[9] <p>:sched:<acct>:parked        zset (score 0) "group\1score\1jobId": capped jobs
-- KEYS[10] <p>:sched:<acct>:parkedGroups zset group -> when last looked at (pick count)
-- KEYS[11] <p>:group:weight              hash group -> weight
-- KEYS[12] <p>:group:limit               hash group -> cap
-- KEYS[13] <p>:pause                     pool-wide pause
-- KEYS[14] <p>:processing:<cid>          the runner's processing list
-- KEYS[15] <p>:sched:<acct>:wake         list: a token wakes an idle runner
-- KEYS[16] <p>:job:                      prefix of job hashes (the candidate's: .. jobId)
-- KEYS[17] <p>:budget:<yyyymmdd>         today's (UTC) budget figures (i20-wire: KEYS[17..20]
--                                        all or none; none: no reservation)
-- KEYS[18] <p>:budget:group              group -> daily budget
-- KEYS[19] <p>:budget:models             observed costs per model
-- KEYS[20] <p>:budget:open               open reservations
-- KEYS[21] <p>:pause:acct:<acct>         (optional, i20-accounts) the account's pause
-- ARGV[1] K: every K-th pick is reserved for a waiting lower priority (0: never)
-- ARGV[2] consumer id (the runner's)
-- ARGV[3] lease in ms (Redis's clock)
-- ARGV[4] this call's token (the runner's pick count): marks the job it starts
-- ARGV[5] today (yyyymmdd, UTC)
-- ARGV[6] KIE_DAILY_CREDIT_BUDGET (0 none)
-- ARGV[7] the account's alias, kept in the job hash (account) when not '': a pool of
--         several accounts, where it names the job's structure
-- Returns {'picked', jobId, descriptor, priority, group, queuedAt, tag, outcome, epoch,
-- attempts, state before, taskId, owner before, mayHaveTask} with outcome started |
-- takeover | has_task | finished | owned | uncertain (started and takeover make this
-- consumer the owner) | over_budget (not started; then which budget and the estimate) |
-- {'empty', next due (epoch ms, 0: none), groups with parked jobs} | {'paused'} |
-- {'again'} (many parked in one go: call again) | {'held'} (the runner's list holds a
-- descriptor: route that leftover first).
--#include budget.lua
local SPAN = 1e12
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- the runner's list is empty when it picks, unless this very call ran before and its
-- reply was lost (the job it started is at the head, marked with this token) or a
-- leftover is there
local held = redis.call('LINDEX', KEYS[14], 0)
if held then
  local ok, d = pcall(cjson.decode, held)
  local hid = ok and type(d) == 'table' and d['id']
  if type(hid) == 'string' and hid ~= '' then
    local h = redis.call('HMGET', KEYS[16] .. hid, 'pick', 'owner', 'state', 'epoch',
      'attempts', 'priority', 'group', 'queuedAt', 'mayHaveTask')
    -- the job hash's pick: "<token> <tag> <outcome>" (started, or takeover: a replay of
    -- a takeover must not answer started — its last owner may have created a task)
    local tok, tg, ho = string.match(h[1] or '', '^(%d+) (%d*) (%a+)$')
    if tok == ARGV[4] and h[2] == ARGV[2] and h[3] == 'creating' then
      return {'picked', hid, held, tonumber(h[6] or '5') or 5, h[7] or '', h[8] or '', tg,
        ho, tonumber(h[4] or '0') or 0, tonumber(h[5] or '0') or 0, 'creating', '',
        ARGV[2], h[9] and '1' or '0'}
    end
  end
  return {'held'}
end
if redis.call('EXISTS', KEYS[13]) == 1 then return {'paused'} end
-- >>> i20-accounts: a paused account's jobs wait while the others run
if KEYS[21] and redis.call('EXISTS', KEYS[21]) == 1 then return {'paused'} end
-- <<<

local function split(it)
  local p, g, q, tg, raw = string.match(it, '^(%d)\t([^\t]*)\t(%d*)\t(%d*)\t(.*)$')
  return tonumber(p), g, q, tg, raw
end
local function fmt(x) return string.format('%d', x) end
-- start-time fair queuing: tag = max(V_p, the group's last tag) + 1000 / weight
local function assign(p, g)
  local w = tonumber(redis.call('HGET', KEYS[11], g) or '1') or 1
  local inc = math.max(1, math.floor(1000 / w))
  local gk = p .. '|' .. g
  local v = tonumber(redis.call('HGET', KEYS[4], 'v' .. p) or '0') or 0
  local last = tonumber(redis.call('HGET', KEYS[5], gk) or '0') or 0
  local tg = math.max(v, last) + inc
  redis.call('HSET', KEYS[5], gk, fmt(tg))
  return tg
end

-- due delayed jobs (notBefore reached, retry waits over) become ready
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  local it = redis.call('HGET', KEYS[3], id)
  if it then
    local p, g, q, _, raw = split(it)
    local tg = assign(p, g)
    redis.call('ZADD', KEYS[1], (9 - p) * SPAN + tg, id)
    redis.call('HINCRBY', KEYS[4], 'n' .. p, 1)
    redis.call('HSET', KEYS[3], id, p .. '\t' .. g .. '\t' .. q .. '\t' .. fmt(tg) .. '\t' .. raw)
  end
end

local bk = math.floor(now / 5000)
-- one read of the scalar state: picks, the pace bucket, each level's virtual time
local sv = redis.call('HMGET', KEYS[4], 'picks', 'bt' .. (bk % 12), 'v0', 'v1', 'v2', 'v3',
  'v4', 'v5', 'v6', 'v7', 'v8', 'v9')
local picks = tonumber(sv[1] or '0') or 0
local capped = redis.call('HLEN', KEYS[12]) > 0
-- capped groups with room again get their parked jobs back, at their old place
if redis.call('ZCARD', KEYS[10]) > 0 then
  for _, g in ipairs(redis.call('ZRANGE', KEYS[10], 0, 7)) do
    local lim = tonumber(redis.call('HGET', KEYS[12], g) or '0') or 0
    local inf = tonumber(redis.call('HGET', KEYS[7], g) or '0') or 0
    local room = lim > 0 and lim - inf or 1000
    local lo, hi = '[' .. g .. '\1', '(' .. g .. '\2'
    if room > 0 then
      for _, m in ipairs(redis.call('ZRANGEBYLEX', KEYS[9], lo, hi, 'LIMIT', 0, room)) do
        local sc, id = string.match(m, '\1(%d+)\1(.*)$')
        redis.call('ZREM', KEYS[9], m)
        redis.call('ZADD', KEYS[1], tonumber(sc), id)
        local p = 9 - math.floor(tonumber(sc) / SPAN)
        redis.call('HINCRBY', KEYS[4], 'n' .. p, 1)
      end
    end
    if #redis.call('ZRANGEBYLEX', KEYS[9], lo, hi, 'LIMIT', 0, 1) == 0 then
      redis.call('ZREM', KEYS[10], g)
    else
      redis.call('ZADD', KEYS[10], picks + 1, g) -- the others' turn next
    end
  end
end

-- the level: the highest ready priority, or on every K-th pick the lower level served
-- least recently
local function level_head(p)
  local h = redis.call('ZRANGEBYSCORE', KEYS[1], (9 - p) * SPAN, '(' .. fmt((10 - p) * SPAN),
    'WITHSCORES', 'LIMIT', 0, 1)
  return h[1], h[2]
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #head == 0 then
  local d = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {'empty', d[2] and tonumber(d[2]) or 0, redis.call('ZCARD', KEYS[10])}
end
local top = 9 - math.floor(tonumber(head[2]) / SPAN)
local lvl = top
local k = tonumber(ARGV[1]) or 0
if k > 0 and (picks + 1) % k == 0 then
  local n = redis.call('HMGET', KEYS[4], 'n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8',
    's0', 's1', 's2', 's3', 's4', 's5', 's6', 's7', 's8')
  local best
  for p = 0, top - 1 do
    if (tonumber(n[p + 1] or '0') or 0) > 0 then
      local served = tonumber(n[p + 10] or '-1') or -1
      if not best or served < best[2] then best = {p, served} end
    end
  end
  if best then lvl = best[1] end
end

-- the candidate: the head of the level, parking jobs of groups at their cap
for i = 1, 32 do
  local id, sc
  if i == 1 and lvl == top then id, sc = head[1], head[2] else id, sc = level_head(lvl) end
  if not id then
    if lvl == top then return {'again'} end
    lvl = top -- the reserved level emptied (parked): serve the top
  else
    local it = redis.call('HGET', KEYS[3], id)
    local p, g, q, tg, raw
    if it then p, g, q, tg, raw = split(it) end
    if not it or not p then -- no item (cannot happen): drop the entry
      redis.call('ZREM', KEYS[1], id)
      redis.call('HINCRBY', KEYS[4], 'n' .. lvl, -1)
    else
      local lim = capped and tonumber(redis.call('HGET', KEYS[12], g) or '0') or 0
      if lim > 0 and (tonumber(redis.call('HGET', KEYS[7], g) or '0') or 0) >= lim then
        redis.call('ZREM', KEYS[1], id)
        redis.call('HINCRBY', KEYS[4], 'n' .. p, -1)
        redis.call('ZADD', KEYS[9], 0, g .. '\1' .. string.format('%016d', tonumber(sc)) ..
          '\1' .. id)
        redis.call('ZADD', KEYS[10], 'NX', picks, g)
      else
        -- the candidate's job hash, read before the first write of the pick
        local jk = KEYS[16] .. id
        local j = redis.call('HMGET', jk, 'state', 'owner', 'epoch', 'lease', 'taskId',
          'attempts', 'mayHaveTask', 'model', 'modelCredits')
        -- picked: out of the structure, into the runner's list
        redis.call('ZREM', KEYS[1], id)
        redis.call('HDEL', KEYS[3], id)
        redis.call('HINCRBY', KEYS[4], 'n' .. p, -1)
        local tgn = tonumber(tg)
        if redis.call('HINCRBY', KEYS[6], g, -1) <= 0 then
          redis.call('HDEL', KEYS[6], g)
          -- the group has nothing queued or delayed: a last tag at or below its level's
          -- virtual time decides nothing any more (max(V, last) = V from now on, V never
          -- falls), so it goes: the tags held are those of groups with work, not of every
          -- group ever seen
          local gks = {}
          for lv = 0, 9 do gks[lv + 1] = lv .. '|' .. g end
          local lt = redis.call('HMGET', KEYS[5], unpack(gks))
          for lv = 0, 9 do
            local l = tonumber(lt[lv + 1] or '')
            local v = tonumber(sv[3 + lv] or '0') or 0
            if lv == p and tgn > v then v = tgn end
            if l and l <= v then redis.call('HDEL', KEYS[5], gks[lv + 1]) end
          end
        end
        -- V_p moves to the tag picked; the pace: picks per 5 s bucket over the last
        -- minute (kie_position's ETA)
        local w = {'picks', picks + 1, 's' .. p, picks + 1}
        if tgn > (tonumber(sv[3 + p] or '0') or 0) then w[#w + 1] = 'v' .. p w[#w + 1] = tg end
        if sv[2] == fmt(bk) then
          redis.call('HINCRBY', KEYS[4], 'b' .. (bk % 12), 1)
        else
          w[#w + 1] = 'b' .. (bk % 12) w[#w + 1] = 1
          w[#w + 1] = 'bt' .. (bk % 12) w[#w + 1] = fmt(bk)
          w[#w + 1] = 'bf' .. (bk % 12) w[#w + 1] = fmt(now)
        end
        redis.call('HSET', KEYS[4], unpack(w))
        redis.call('LPUSH', KEYS[14], raw)
        -- more to do: wake the next idle runner
        if redis.call('ZCARD', KEYS[1]) > 0 and redis.call('LLEN', KEYS[15]) == 0 then
          redis.call('LPUSH', KEYS[15], '1')
        end
        -- the start (job_start.lua before): the ownership table of docs/protocol.md
        local st, owner, epoch = j[1] or '', j[2] or '', tonumber(j[3] or '0') or 0
        local lease, task = tonumber(j[4] or '0') or 0, j[5] or ''
        local att = tonumber(j[6] or '0') or 0
        local o, extra
        if st == 'completed' or st == 'failed' or st == 'cancelled' then o = 'finished'
        elseif task ~= '' then o = 'has_task'
        elseif owner ~= '' and owner ~= ARGV[2] and lease > now then o = 'owned'
        elseif st == 'uncertain' then o = 'uncertain'
        else
          local nows = fmt(now)
          local f = {'owner', ARGV[2], 'epoch', epoch + 1, 'lease',
            fmt(now + tonumber(ARGV[3])), 'workerId', ARGV[2], 'updatedAt', nows,
            'claimedAt', nows}
          if st == 'creating' then
            o = 'takeover' -- its last owner stopped inside createTask: a task may exist
          else
            o = 'started'
            -- >>> i20-wire: the budget reservation, with the createTask slot
            -- (docs/protocol.md, "Credits, spend and budgets"): a job whose estimate
            -- would pass the pool's or its group's budget today is not started and
            -- spends no attempt
            if KEYS[20] then
              local bud = budget_reserve(jk, KEYS[17], KEYS[18], KEYS[19], KEYS[20], id,
                ARGV[5], g, j[8] or '', tonumber(j[9] or '') or 0, tonumber(ARGV[6]) or 0,
                now)
              if bud[1] == 0 then
                o = 'over_budget'
                local which = bud[2] == 'group' and ('group ' .. g) or 'pool'
                extra = {string.format(
                  '%s budget: %.6g of %.6g credits used today (UTC), this job ~%.6g',
                  which, bud[3], bud[4], bud[5]), string.format('%.6g', bud[5])}
              end
            end
            -- <<< i20-wire
            if o == 'started' then
              att = att + 1
              if ARGV[7] and ARGV[7] ~= '' then f[#f + 1] = 'account' f[#f + 1] = ARGV[7] end
              f[#f + 1] = 'state' f[#f + 1] = 'creating'
              f[#f + 1] = 'attempts' f[#f + 1] = att
            end
          end
          if o ~= 'over_budget' then -- started or takeover: this runner owns it now
            epoch = epoch + 1
            -- in-flight counts are kept while caps exist (a cap set later counts the
            -- jobs started after it); the job hash's inflight field names the group
            -- until its final state
            if capped then
              redis.call('HINCRBY', KEYS[7], g, 1)
              f[#f + 1] = 'inflight' f[#f + 1] = g
            end
            f[#f + 1] = 'pick' f[#f + 1] = ARGV[4] .. ' ' .. tg .. ' ' .. o
            redis.call('HSET', jk, unpack(f))
          end
        end
        local r = {'picked', id, raw, p, g, q, tg, o, epoch, att, st, task, owner,
          j[7] and '1' or '0'}
        if extra then r[15] = extra[1] r[16] = extra[2] end
        return r
      end
    end
  end
end
return {'again'}
