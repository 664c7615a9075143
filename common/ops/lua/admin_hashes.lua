#!lua flags=no-writes
-- admin_hashes.lua — some fields of many hashes in one step, for the operator page's views
-- of in-flight tasks (their task hashes) and uncertain jobs (their job hashes): the C side
-- lists the ids first (ZRANGE) and passes each hash as a key. Read only.
-- KEYS[1..n] the hashes (<p>:task:<taskId> or <p>:job:<jobId>)
-- ARGV[1..m] the fields
-- Returns one array of m values per key, in order (false for a missing field; all false
-- for a missing key or one of another type).
local out = {}
for i = 1, #KEYS do
  local ok, v = pcall(redis.call, 'HMGET', KEYS[i], unpack(ARGV))
  if not ok then
    v = {}
    for j = 1, #ARGV do v[j] = false end
  end
  out[i] = v
end
return out
