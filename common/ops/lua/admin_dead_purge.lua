-- admin_dead_purge.lua — purges one dead letter (`kie dead purge`) and counts it.
-- KEYS[1] <p>:dead   list of dead letters
-- KEYS[2] <p>:stats  hash
-- ARGV[1] the entry (exact bytes)
-- ARGV[2] dry_run: "1" or "0"
-- Returns {outcome, why}: outcome purged | would_purge | gone; or an error reply when
-- <p>:stats holds the wrong type.
if redis.call('TYPE', KEYS[1])['ok'] ~= 'list' or
   not redis.call('LPOS', KEYS[1], ARGV[1]) then
  return {'gone', 'the entry is no longer in the dead letters'}
end
local ty = redis.call('TYPE', KEYS[2])['ok']
if ty ~= 'hash' and ty ~= 'none' then
  return redis.error_reply(KEYS[2] .. ' holds a ' .. ty .. ', not a hash')
end
if ARGV[2] == '1' then return {'would_purge', ''} end
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('HINCRBY', KEYS[2], 'dead_purged', 1)
return {'purged', ''}
