-- limiter_penalize.lua — KIE refused a call as over its limit (429) or under
-- maintenance (455): every caller of the limiter waits. Refusals during a pause join
-- it; one that comes within twice the last backoff after it ended doubles it.
-- Reservations not yet due are dropped (their holders ask again).
-- KEYS[1] <ap>:{<account>}:<name>         zset member -> reserved call time (ms)
-- KEYS[2] <ap>:{<account>}:<name>:state   hash blockedUntil, backoffMs, penalties, ...
-- ARGV[1] base backoff in ms
-- ARGV[2] longest backoff in ms
-- ARGV[3] the reason (KIE's message)
-- Returns {pause_ms, started 0|1}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st = redis.call('HMGET', KEYS[2], 'blockedUntil', 'backoffMs')
local untl = tonumber(st[1] or '0') or 0
local b = tonumber(st[2] or '0') or 0
if untl > now then return {untl - now, 0} end
local base, max = tonumber(ARGV[1]), tonumber(ARGV[2])
if b > 0 and now - untl < 2 * b then b = math.min(b * 2, max) else b = base end
untl = now + b
redis.call('HSET', KEYS[2], 'blockedUntil', string.format('%d', untl),
  'backoffMs', string.format('%d', b), 'lastReason', ARGV[3],
  'lastAt', string.format('%d', now))
redis.call('HINCRBY', KEYS[2], 'penalties', 1)
redis.call('PEXPIRE', KEYS[2], 86400000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], string.format('(%d', now), '+inf')
return {b, 1}
