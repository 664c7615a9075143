#!lua flags=no-writes
-- pause_get.lua — reads the pool-wide pause (read-only: runs when Redis refuses writes
-- and on replicas).
-- KEYS[1] <p>:pause                string (JSON)
-- Returns {value or '', PTTL}: PTTL -2 not paused, -1 no expiry, else ms left.
return {redis.call('GET', KEYS[1]) or '', redis.call('PTTL', KEYS[1])}
