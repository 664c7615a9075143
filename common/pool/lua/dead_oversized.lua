-- dead_oversized.lua — releases a claimed descriptor too large to read into the dead
-- letters: it is found by length and head inside Redis and never sent back.
-- KEYS[1] <p>:processing:<cid>     the consumer's processing list
-- KEYS[2] <p>:dead                 list of dead letters
-- KEYS[3] <p>:stats                hash of counters
-- KEYS[4] <p>:hist:m:<minute>      history, this minute (i21, lib/history.lua)
-- KEYS[5] <p>:hist:d:<yyyymmdd>    history, this day (i21)
-- ARGV[1] the descriptor's length in bytes
-- ARGV[2] its first bytes
-- ARGV[3] the dead-letter entry (JSON: size, SHA-256, head)
-- ARGV[4] KIE_DEAD_MAX
-- Returns 1, or 0 when no such descriptor is held.
--#include history.lua
for _, k in ipairs({KEYS[2], KEYS[3]}) do
  local t = redis.call('TYPE', k)['ok']
  local want = k == KEYS[2] and 'list' or 'hash'
  if t ~= want and t ~= 'none' then error(k .. ' holds a ' .. t .. ', not a ' .. want) end
end
local n = tonumber(ARGV[1])
local function same(v)
  return v and string.len(v) == n and string.sub(v, 1, string.len(ARGV[2])) == ARGV[2]
end
local v = redis.call('LINDEX', KEYS[1], 0)
if not same(v) then v = redis.call('LINDEX', KEYS[1], -1) end
if not same(v) then return 0 end
redis.call('LREM', KEYS[1], 1, v)
local max = tonumber(ARGV[4])
local len = redis.call('LPUSH', KEYS[2], ARGV[3])
if len > max then
  redis.call('LTRIM', KEYS[2], 0, max - 1)
  redis.call('HINCRBY', KEYS[3], 'dead_dropped', len - max)
end
redis.call('HINCRBY', KEYS[3], 'dead', 1)
-- i21: the history counters
hist_add(KEYS[4], KEYS[5], {'dead'})
return 1
