-- heartbeat.lua — refreshes the heartbeats of one worker's consumers and, in the same
-- step, the lease of the job each owns, by Redis's clock.
-- KEYS[1]        <p>:workers                 set of consumer ids, for recovery
-- KEYS[2..n+1]   <p>:worker:<cid>            heartbeat of consumer i (i = 1..n)
-- KEYS[n+2..]    <p>:job:<jobId>             job hashes of the jobs they own (ARGV says whose)
-- ARGV[1] heartbeat TTL in ms (also the lease renewal)
-- ARGV[2] heartbeat value (worker info)
-- ARGV[3] n, the number of consumers
-- then per consumer i = 1..n, three ARGV: its id; the KEYS index of the job hash it owns
-- ('0': none); the epoch of that claim
-- Returns the number of leases renewed.
local ttl, n = tonumber(ARGV[1]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = string.format('%d', now + ttl)
local cids, renewed = {}, 0
for i = 1, n do
  local cid, ki, ep = ARGV[1 + 3 * i], tonumber(ARGV[2 + 3 * i]), ARGV[3 + 3 * i]
  cids[i] = cid
  redis.call('SET', KEYS[1 + i], ARGV[2], 'PX', ttl)
  if ki > 0 then
    local o = redis.call('HMGET', KEYS[ki], 'owner', 'epoch')
    if o[1] == cid and o[2] == ep then
      redis.call('HSET', KEYS[ki], 'lease', lease)
      renewed = renewed + 1
    end
  end
end
if n > 0 then redis.call('SADD', KEYS[1], unpack(cids)) end
return renewed
