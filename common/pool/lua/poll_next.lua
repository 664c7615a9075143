-- poll_next.lua — a poller's one step: moves up to ARGV[1] task ids pushed onto
-- <p>:polling (by producers, or adopted by callbacks) into <p>:poll:due, then claims the
-- earliest task due by ARGV[3], leasing it until ARGV[4] (a dead poller's task comes
-- due again then).
-- KEYS[1] <p>:polling              list of task ids to poll
-- KEYS[2] <p>:poll:due             zset task id -> next poll (or lease end), epoch ms
-- ARGV[1] the most ids to move
-- ARGV[2] first poll time of a moved id (epoch ms)
-- ARGV[3] now (epoch ms)
-- ARGV[4] lease end (epoch ms)
-- Returns {taskId, due} for a claimed task, {false, due} when the earliest is due later,
-- {false, -1} when there is nothing to poll.
local ids = redis.call('RPOP', KEYS[1], tonumber(ARGV[1]))
if ids then
  local z = {}
  for _, id in ipairs(ids) do z[#z + 1] = ARGV[2] z[#z + 1] = id end
  redis.call('ZADD', KEYS[2], 'NX', unpack(z))
end
local e = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #e == 0 then return {false, -1} end
if tonumber(e[2]) > tonumber(ARGV[3]) then return {false, e[2]} end
redis.call('ZADD', KEYS[2], 'XX', ARGV[4], e[1])
return {e[1], e[2]}
