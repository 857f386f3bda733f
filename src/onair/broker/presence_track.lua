-- presence_track: add or replace one presence entry; returns the replaced value or false.
-- KEYS[1]  topic hash   {prefix}presence:{topic}      field "{node}|{ref}" -> entry
-- KEYS[2]  node hash    {prefix}presence-node:{node}  field "{ref}|{topic}" -> "1"
-- KEYS[3]  nodes zset   {prefix}presence-nodes        member node -> alive-until (ms, server TIME)
-- ARGV[1]  topic field "{node}|{ref}"
-- ARGV[2]  entry bytes (presence_base.encode_entry)
-- ARGV[3]  node field "{ref}|{topic}"
-- ARGV[4]  node id
-- ARGV[5]  ttl in ms
-- A node seen for the first time is registered as alive for ttl; an existing registration is left
-- alone (NX), so tracking cannot revive a node that already expired: its heartbeat reports that.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], '1')
redis.call('ZADD', KEYS[3], 'NX', now + tonumber(ARGV[5]), ARGV[4])
return old
