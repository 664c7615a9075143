-- pause_clear.lua — lifts the pool-wide pause when its kind is ARGV[1] ('' any kind).
-- KEYS[1] <p>:pause                string (JSON)
-- ARGV[1] the kind to lift, or ''
-- Returns 1 lifted, 0 not paused or another kind.
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if ARGV[1] ~= '' then
  local ok, o = pcall(cjson.decode, v)
  if not (ok and type(o) == 'table' and o.kind == ARGV[1]) then return 0 end
end
redis.call('DEL', KEYS[1])
return 1
