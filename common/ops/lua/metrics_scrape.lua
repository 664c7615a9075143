#!lua flags=no-writes
-- metrics_scrape.lua — the pool's gauges for GET /metrics in one step: the queues, every
-- consumer's processing list, the workers alive, the pause and the queue's oldest entry.
-- Read only. The C side lists <p>:workers first (SMEMBERS, the first 10000) and passes
-- each consumer's keys. A key of the wrong type reads as -1 (left out of the exposition),
-- not as an error.
-- KEYS[1] <p>:queue
-- KEYS[2] <p>:delayed
-- KEYS[3] <p>:uncertain
-- KEYS[4] <p>:dead
-- KEYS[5] <p>:callbacks
-- KEYS[6] <p>:polling
-- KEYS[7] <p>:poll:due
-- KEYS[8] <p>:pause
-- KEYS[7+2i] <p>:processing:<cid>   of consumer i (i = 1..n), whose id is ARGV[2+i]
-- KEYS[8+2i] <p>:worker:<cid>       its heartbeat
-- ARGV[1] bytes of the queue's oldest entry to return at most
-- ARGV[2] "1": <p>:workers was listed; "0": it holds the wrong type (processing and
-- workers alive read -1)
-- ARGV[3..] the consumer ids listed, in order
-- Returns {queue, processing, delayed, polling (+ poll:due), uncertain, dead, callbacks,
-- workers alive (first consumers, id "...#0", with a live heartbeat), pause JSON or ""
-- ("?" when unreadable), length of the queue's oldest entry or -1, its first bytes}.
local function n(cmd, k)
  local ok, v = pcall(redis.call, cmd, k)
  if ok and type(v) == 'number' then return v end
  return -1
end
local out = {n('LLEN', KEYS[1]), 0, n('ZCARD', KEYS[2]), -1, n('ZCARD', KEYS[3]),
  n('LLEN', KEYS[4]), n('LLEN', KEYS[5]), 0, '', -1, ''}
local pl, pd = n('LLEN', KEYS[6]), n('ZCARD', KEYS[7])
if pl >= 0 and pd >= 0 then out[4] = pl + pd end
if ARGV[2] == '1' then
  for i = 1, #ARGV - 2 do
    local l = n('LLEN', KEYS[7 + 2 * i])
    if l > 0 then out[2] = out[2] + l end
    if string.sub(ARGV[2 + i], -2) == '#0' and
        redis.call('EXISTS', KEYS[8 + 2 * i]) == 1 then
      out[8] = out[8] + 1
    end
  end
else
  out[2], out[8] = -1, -1
end
local okp, pause = pcall(redis.call, 'GET', KEYS[8])
if okp and type(pause) == 'string' then out[9] = pause
elseif not okp then out[9] = '?' end
local okh, v = pcall(redis.call, 'LINDEX', KEYS[1], -1)
if okh and type(v) == 'string' then
  out[10] = #v
  out[11] = string.sub(v, 1, tonumber(ARGV[1]))
end
return out
