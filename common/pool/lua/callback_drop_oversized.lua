-- callback_drop_oversized.lua — drops a claimed callback entry too large to read, found
-- by length and head inside Redis; counted as callbacks_refused.
-- KEYS[1] <p>:callbacks:processing:<cid>   the callback consumer's processing list
-- KEYS[2] <p>:stats                        hash of counters
-- ARGV[1] the entry's length in bytes
-- ARGV[2] its first bytes
-- Returns 1, or 0 when no such entry is held.
local n = tonumber(ARGV[1])
for _, i in ipairs({0, -1}) do
  local v = redis.call('LINDEX', KEYS[1], i)
  if v and string.len(v) == n and string.sub(v, 1, string.len(ARGV[2])) == ARGV[2] then
    redis.call('LREM', KEYS[1], 1, v)
    redis.call('HINCRBY', KEYS[2], 'callbacks_refused', 1)
    return 1
  end
end
return 0
