-- emit.lua — (included by scripts/embed-lua.sh where a script says `--#include emit.lua`)
-- the one emission of a completion event, shared by finalize.lua, job_dead.lua and
-- uncertain_resolve.lua, and the key type checks they make before their first write.
-- emit_times(kjob, ev): ev with the job's times spliced in before "finishedAt":
-- "queuedAt" and "startedAt" (epoch ms) from the job hash fields of those names when set
-- (digits only). emit(results, reply, ev, chan, max, rmax, rttl): LPUSHes ev onto results
-- (capped at max), onto reply when given (capped at rmax, expiring rttl s after the push:
-- nobody else trims it) and PUBLISHes it on chan.
local function keytype_ok(k, want)
  local t = redis.call('TYPE', k)['ok']
  return t == want or t == 'none', t
end
local function need(k, want)
  local ok, t = keytype_ok(k, want)
  if not ok then error(k .. ' holds a ' .. t .. ', not a ' .. want) end
end
local function emit_reply(reply, ev, rmax, rttl)
  if redis.call('LPUSH', reply, ev) > rmax then redis.call('LTRIM', reply, 0, rmax - 1) end
  redis.call('EXPIRE', reply, rttl)
end
-- ev with queuedAt and startedAt (job hash values, or nil) spliced in before "finishedAt"
local function emit_times_of(ev, queued, started)
  local add = ''
  if queued and string.match(queued, '^%d+$') then
    add = string.format('"queuedAt":%s,', queued)
  end
  if started and string.match(started, '^%d+$') then
    add = add .. string.format('"startedAt":%s,', started)
  end
  local at = string.find(ev, '"finishedAt":', 1, true)
  if add == '' or not at then return ev end
  return string.sub(ev, 1, at - 1) .. add .. string.sub(ev, at)
end
local function emit_times(kjob, ev)
  local t = redis.call('HMGET', kjob, 'queuedAt', 'startedAt')
  return emit_times_of(ev, t[1], t[2])
end
local function emit(results, reply, ev, chan, max, rmax, rttl)
  if redis.call('LPUSH', results, ev) > max then redis.call('LTRIM', results, 0, max - 1) end
  if reply then emit_reply(reply, ev, rmax, rttl) end
  redis.call('PUBLISH', chan, ev)
end
