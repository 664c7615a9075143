-- replace_claimed.lua — swaps a claimed descriptor for a rewritten one (e.g. with a
-- generated id) in the consumer's processing list.
-- KEYS[1] <p>:processing:<cid>     the consumer's processing list
-- ARGV[1] the descriptor as claimed
-- ARGV[2] the rewritten descriptor
-- Returns 1, or 0 when the old one was not held any more.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[1], ARGV[2])
  return 1
end
return 0
