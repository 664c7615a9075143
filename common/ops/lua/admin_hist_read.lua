#!lua flags=no-writes
-- admin_hist_read.lua — the history counters (lib/history.lua) of a span, for the
-- operator page's charts: each hash whole (at most 6 + 2 x 14 small fields). Read only.
-- KEYS[1..n] <p>:hist:m:<minute> or <p>:hist:d:<yyyymmdd>, oldest first; for days, also
--            <p>:spend:<yyyymmdd> after each day's hash (ARGV[1] '1')
-- ARGV[1] '1': the keys come in pairs (a history hash, then the day's spend hash)
-- Returns per key the flat HGETALL array (empty when the key is absent or not a hash),
-- and for a spend hash only {'total', value}.
local out = {}
local pairs_ = ARGV[1] == '1'
for i = 1, #KEYS do
  local ok, v
  if pairs_ and i % 2 == 0 then
    ok, v = pcall(redis.call, 'HGET', KEYS[i], 'total')
    v = (ok and v) and {'total', v} or {}
  else
    ok, v = pcall(redis.call, 'HGETALL', KEYS[i])
    if not ok then v = {} end
  end
  out[#out + 1] = v
end
return out
