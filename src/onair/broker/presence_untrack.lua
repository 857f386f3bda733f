-- presence_untrack: remove one presence entry; returns its value, or false if it was not there.
-- KEYS[1]  topic hash   {prefix}presence:{topic}
-- KEYS[2]  node hash    {prefix}presence-node:{node}
-- ARGV[1]  topic field "{node}|{ref}"
-- ARGV[2]  node field "{ref}|{topic}"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call('HDEL', KEYS[2], ARGV[2])
return old
