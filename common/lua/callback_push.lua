-- callback_push.lua — the callback endpoint's one Redis step: push an entry and count,
-- atomically. Both keys' types are checked before the first write (a script cannot be
-- rolled back).
-- KEYS[1] <p>:callbacks             list of callback entries
-- KEYS[2] <p>:stats                 hash of counters
-- ARGV[1] the entry ('' to push nothing and only count refusals)
-- ARGV[2] the list's cap
-- ARGV[3] refusals to add to callbacks_refused
-- With an entry also callbacks_received + 1, LPUSH it and LTRIM the list to the cap,
-- counting what that drops in callbacks_dropped.
-- Returns the list's length after the push, or 0 when nothing was pushed.
local t1 = redis.call('TYPE', KEYS[1]).ok
if t1 ~= 'list' and t1 ~= 'none' then
  return redis.error_reply(KEYS[1] .. ' is a ' .. t1 .. ', not a list')
end
local t2 = redis.call('TYPE', KEYS[2]).ok
if t2 ~= 'hash' and t2 ~= 'none' then
  return redis.error_reply(KEYS[2] .. ' is a ' .. t2 .. ', not a hash')
end
local refused = tonumber(ARGV[3])
if refused > 0 then redis.call('HINCRBY', KEYS[2], 'callbacks_refused', refused) end
if ARGV[1] == '' then return 0 end
redis.call('HINCRBY', KEYS[2], 'callbacks_received', 1)
local n = redis.call('LPUSH', KEYS[1], ARGV[1])
local max = tonumber(ARGV[2])
if n > max then
  redis.call('LTRIM', KEYS[1], 0, max - 1)
  redis.call('HINCRBY', KEYS[2], 'callbacks_dropped', n - max)
  n = max
end
return n
