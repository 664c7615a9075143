-- release_copy.lua — releases this consumer's copy of a claimed descriptor: with
-- ARGV[2] '1' it goes back to the consuming end of the queue (and the job's ownership is
-- given up when this consumer holds it), else it is dropped and its recovery count
-- forgotten (a duplicate, or a job another consumer took over).
-- KEYS[1] <p>:processing:<cid>     the consumer's processing list
-- KEYS[2] <p>:queue                the job queue
-- KEYS[3] <p>:recoveries           hash sha1(descriptor) -> count
-- KEYS[4] <p>:job:<jobId>          job hash (any key when ARGV[3] is '0')
-- ARGV[1] the claimed descriptor
-- ARGV[2] '1' requeue, '0' drop
-- ARGV[3] epoch of its claim ('0': not claimed)
-- ARGV[4] consumer id
-- Returns 1, or 0 when the copy was not held any more.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if ARGV[2] == '1' then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  if ARGV[3] ~= '0' then
    local o = redis.call('HMGET', KEYS[4], 'owner', 'epoch')
    if o[1] == ARGV[4] and o[2] == ARGV[3] then
      redis.call('HDEL', KEYS[4], 'owner', 'lease')
    end
  end
else
  redis.call('HDEL', KEYS[3], redis.sha1hex(ARGV[1]))
end
return 1
