-- recover.lua — returns consumers' claimed descriptors to the queue and their claimed
-- callbacks to <p>:callbacks, and forgets the consumers. ARGV[1] '1' (recovery): only
-- consumers whose heartbeat has expired (re-checked here: the C side listed <p>:workers
-- and read the heartbeats first), each descriptor's return counted in <p>:recoveries
-- (the runner that claims it next dead-letters it past KIE_MAX_RECOVERIES) unless it is
-- too large to have been read. ARGV[1] '0' (a clean exit): the caller's own consumers,
-- uncounted, their heartbeats deleted.
-- KEYS[1] <p>:queue                     the job queue
-- KEYS[2] <p>:callbacks                 the callback list
-- KEYS[3] <p>:workers                   set of consumer ids
-- KEYS[4] <p>:recoveries                hash sha1(descriptor) -> count
-- KEYS[5] <p>:stats                     hash of counters
-- then per consumer i = 1..n, three KEYS:
-- KEYS[3+3i] <p>:worker:<cid>           its heartbeat
-- KEYS[4+3i] <p>:processing:<cid>       its processing list
-- KEYS[5+3i] <p>:callbacks:processing:<cid>  its claimed callbacks
-- ARGV[1] '1' recover dead consumers, '0' release own
-- ARGV[2] the largest descriptor a runner reads whole (bytes)
-- ARGV[3..n+2] the consumer ids, in KEYS order
-- Returns {cid, descriptors returned, ...} for each consumer acted on.
local count = ARGV[1] == '1'
local keep = tonumber(ARGV[2])
local out = {}
for i = 1, #ARGV - 2 do
  local w = ARGV[2 + i]
  local hb, proc, cbp = KEYS[3 + 3 * i], KEYS[4 + 3 * i], KEYS[5 + 3 * i]
  if not (count and redis.call('EXISTS', hb) == 1) then
    local back = 0
    while true do
      local item = redis.call('RPOP', proc)
      if not item then break end
      if count and string.len(item) <= keep then
        redis.call('HINCRBY', KEYS[4], redis.sha1hex(item), 1)
      end
      redis.call('RPUSH', KEYS[1], item)
      back = back + 1
    end
    while redis.call('RPOPLPUSH', cbp, KEYS[2]) do end
    redis.call('SREM', KEYS[3], w)
    if count then
      if back > 0 then redis.call('HINCRBY', KEYS[5], 'recovered', back) end
    else
      redis.call('DEL', hb)
    end
    out[#out + 1] = w
    out[#out + 1] = back
  end
end
return out
