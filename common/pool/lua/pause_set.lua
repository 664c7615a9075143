-- pause_set.lua — sets the pool-wide pause. An automatic pause never replaces an
-- operator's (nor shortens it).
-- KEYS[1] <p>:pause                string (JSON {kind, reason, since, by})
-- ARGV[1] kind: account | credits | operator
-- ARGV[2] the value (JSON)
-- ARGV[3] expiry in ms ('0': none)
-- Returns 1 set, 0 an operator's pause was kept.
local v = redis.call('GET', KEYS[1])
if v and ARGV[1] ~= 'operator' then
  local ok, o = pcall(cjson.decode, v)
  if ok and type(o) == 'table' and o.kind == 'operator' then return 0 end
end
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else redis.call('SET', KEYS[1], ARGV[2]) end
return 1
