-- pick.lua — the pick rule (docs/protocol.md, "Who goes first"), run by a runner that
-- holds a createTask slot: promotes the delayed jobs that are due, gives capped groups
-- with room their parked jobs back, then takes the ready job with the highest priority
-- and, within it, the smallest start tag (start-time fair queuing across groups); every
-- K-th pick goes instead to the lower priority level served least recently (the reserved
-- share: no job waits for ever). A job whose group is at its cap is parked on the way.
-- The descriptor goes into the runner's processing list in this same step, so recovery
-- is unchanged; the job is started (owner, fencing) by job_start.lua next.
-- O(log N) in the ready jobs: one ZRANGE of the head, plus one per parked job.
-- KEYS[1] <p>:sched:<acct>:ready         zset jobId -> (9 - priority) * 1e12 + tag
-- KEYS[2] <p>:sched:<acct>:delayed       zset jobId -> due (epoch ms)
-- KEYS[3] <p>:sched:<acct>:items         hash jobId -> "prio\tgroup\tqueuedAt\ttag\tdescriptor"
-- KEYS[4] <p>:sched:<acct>:state         hash v<p>, n<p>, s<p> (last served), picks, pace
-- KEYS[5] <p>:sched:<acct>:gtag          hash "<p>|<group>" -> its last tag, while it has work
-- KEYS[6] <p>:sched:<acct>:gcount        hash group -> jobs queued or delayed
-- KEYS[7] <p>:sched:<acct>:inflight      hash group -> jobs between claim and final state
-- KEYS[8] <p>:sched:<acct>:picked        hash jobId -> group (picked, not yet started)
-- KEYS[9] <p>:sched:<acct>:parked        zset (score 0) "group\1score\1jobId": capped jobs
-- KEYS[10] <p>:sched:<acct>:parkedGroups zset group -> when last looked at (pick count)
-- KEYS[11] <p>:group:weight              hash group -> weight
-- KEYS[12] <p>:group:limit               hash group -> cap
-- KEYS[13] <p>:pause                     pool-wide pause
-- KEYS[14] <p>:processing:<cid>          the runner's processing list
-- KEYS[15] <p>:sched:<acct>:wake         list: a token wakes an idle runner
-- KEYS[16] <p>:pause:acct:<acct>         (optional, i20-accounts) the account's pause
-- ARGV[1] K: every K-th pick is reserved for a waiting lower priority (0: never)
-- Returns {'picked', jobId, descriptor, priority, group, queuedAt, tag} | {'empty',
-- next due (epoch ms, 0: none), groups with parked jobs} | {'paused'} | {'again'} (many
-- parked in one go: call again).
local SPAN = 1e12
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[13]) == 1 then return {'paused'} end
-- >>> i20-accounts: a paused account's jobs wait while the others run
if KEYS[16] and redis.call('EXISTS', KEYS[16]) == 1 then return {'paused'} end
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
        -- in-flight counts are kept while caps exist (a cap set later counts the jobs
        -- started after it)
        if capped then
          redis.call('HINCRBY', KEYS[7], g, 1)
          redis.call('HSET', KEYS[8], id, g)
        end
        redis.call('LPUSH', KEYS[14], raw)
        -- more to do: wake the next idle runner
        if redis.call('ZCARD', KEYS[1]) > 0 and redis.call('LLEN', KEYS[15]) == 0 then
          redis.call('LPUSH', KEYS[15], '1')
        end
        return {'picked', id, raw, p, g, q, tg}
      end
    end
  end
end
return {'again'}
