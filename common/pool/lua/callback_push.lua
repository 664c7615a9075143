-- callback_push.lua — the callback endpoint's one Redis step: push an entry and count,
-- atomically. Every key's type is checked before the first write (a script cannot be
-- rolled back).
-- KEYS[1] <p>:callbacks             list of callback entries
-- KEYS[2] <p>:stats                 hash of counters
-- KEYS[3] (signed callbacks only) <p>:callbacks:seen:<sha256 of taskId "." timestamp>,
--         the replay cache's key for this pair
-- ARGV[1] the entry ('' to push nothing and only count refusals)
-- ARGV[2] the list's cap (KIE_CALLBACKS_MAX)
-- ARGV[3] refusals to add to callbacks_refused
-- ARGV[4] (with KEYS[3]) how long the pair is remembered, in ms (2 x KIE_WEBHOOK_WINDOW_S)
-- With an entry: a pair already seen is not pushed (callbacks_replayed + 1, returns -2);
-- a list at its cap takes nothing (callbacks_dropped + 1, returns -1: the endpoint answers
-- 503 and KIE tries again; the entries already waiting, KIE's genuine callbacks among
-- them, are never evicted); else callbacks_received + 1, the entry LPUSHed, the pair
-- remembered, and the list's length returned. Without one: returns 0.
-- Returns: the list's length, -1 (full), -2 (replayed) or 0 (count only).
local t1 = redis.call('TYPE', KEYS[1]).ok
if t1 ~= 'list' and t1 ~= 'none' then
  return redis.error_reply(KEYS[1] .. ' is a ' .. t1 .. ', not a list')
end
local t2 = redis.call('TYPE', KEYS[2]).ok
if t2 ~= 'hash' and t2 ~= 'none' then
  return redis.error_reply(KEYS[2] .. ' is a ' .. t2 .. ', not a hash')
end
if KEYS[3] then
  local t3 = redis.call('TYPE', KEYS[3]).ok
  if t3 ~= 'string' and t3 ~= 'none' then
    return redis.error_reply(KEYS[3] .. ' is a ' .. t3 .. ', not a string')
  end
end
local refused = tonumber(ARGV[3])
if refused > 0 then redis.call('HINCRBY', KEYS[2], 'callbacks_refused', refused) end
if ARGV[1] == '' then return 0 end
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HINCRBY', KEYS[2], 'callbacks_replayed', 1)
  return -2
end
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then
  redis.call('HINCRBY', KEYS[2], 'callbacks_dropped', 1)
  return -1
end
if KEYS[3] then
  redis.call('SET', KEYS[3], '1', 'PX', tonumber(ARGV[4]))
end
redis.call('HINCRBY', KEYS[2], 'callbacks_received', 1)
return redis.call('LPUSH', KEYS[1], ARGV[1])
