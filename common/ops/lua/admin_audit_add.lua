-- admin_audit_add.lua — records one operator action (the web page's, or `kie dead
-- retry|purge`, `kie pause|resume`) in the pool's audit list, newest first, capped.
-- KEYS[1] <p>:audit   list of JSON entries {"at","who","from","action",...}
-- ARGV[1] the entry (JSON, built by the caller)
-- ARGV[2] cap: entries kept at most (the oldest go)
-- Returns the list's length; an error reply when the key holds another type.
local ty = redis.call('TYPE', KEYS[1])['ok']
if ty ~= 'list' and ty ~= 'none' then
  return redis.error_reply(KEYS[1] .. ' holds a ' .. ty .. ', not a list')
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return redis.call('LLEN', KEYS[1])
