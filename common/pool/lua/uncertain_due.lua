#!lua flags=no-writes
-- uncertain_due.lua — up to ARGV[1] ids of uncertain jobs whose window ended by Redis's
-- clock (read-only).
-- KEYS[1] <p>:uncertain            zset job id -> end of its window (epoch ms)
-- ARGV[1] the most ids to return
-- Returns an array of job ids.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now), 'LIMIT', 0,
  tonumber(ARGV[1]))
