#!lua flags=no-writes
-- admin_queue_page.lua — one page of the jobs that wait, for the operator page's queued
-- view: the queue from its consuming end (position 0 is the next to be claimed), or the
-- delayed set earliest due first. Returns what each descriptor says of itself (id, type)
-- and its size, never its bytes: a page of large descriptors stays small. Read only.
-- KEYS[1] <p>:queue     list of descriptors; producers LPUSH, workers take the right end
-- KEYS[2] <p>:delayed   zset of descriptors, score = due time (epoch ms)
-- ARGV[1] 'queue' or 'delayed'
-- ARGV[2] offset: entries skipped from the consuming end (queue) or the earliest (delayed)
-- ARGV[3] limit: entries returned at most
-- Returns {queue length, delayed size, then per entry: id ('' when the descriptor has no
-- string id), type ('' likewise), bytes, due ('' in the queue)}; a key of the wrong type
-- reads as empty.
local off, lim = tonumber(ARGV[2]), tonumber(ARGV[3])
local function n(cmd, k)
  local ok, v = pcall(redis.call, cmd, k)
  if ok and type(v) == 'number' then return v end
  return 0
end
local qlen, dlen = n('LLEN', KEYS[1]), n('ZCARD', KEYS[2])
local out = {qlen, dlen}
local function add(e, due)
  local id, ty = '', ''
  local ok, d = pcall(cjson.decode, e)
  if ok and type(d) == 'table' then
    if type(d.id) == 'string' then id = d.id end
    if type(d.type) == 'string' then ty = d.type end
  end
  out[#out + 1] = id
  out[#out + 1] = ty
  out[#out + 1] = #e
  out[#out + 1] = due
end
if ARGV[1] == 'queue' and qlen > off then
  local page = redis.call('LRANGE', KEYS[1], -off - lim, -off - 1)
  for i = #page, 1, -1 do add(page[i], '') end
elseif ARGV[1] == 'delayed' and dlen > off then
  local page = redis.call('ZRANGE', KEYS[2], off, off + lim - 1, 'WITHSCORES')
  for i = 1, #page, 2 do add(page[i], page[i + 1]) end
end
return out
