-- presence_heartbeat: keep one node alive and sweep expired nodes' entries.
-- KEYS[1]  nodes zset   {prefix}presence-nodes
-- ARGV[1]  node id
-- ARGV[2]  ttl in ms
-- ARGV[3]  key prefix (topic and node hashes are named from it: {prefix}presence:{topic},
--          {prefix}presence-node:{node}; fine on one Redis, not on Redis Cluster)
-- ARGV[4]  most expired nodes swept per call
-- Returns {was_alive (1|0), topic, topic field, entry JSON, ...} for every removed entry, so the
-- caller can publish the leaves. The caller's own node is swept first if it had expired.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[3]
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
local was_alive = 0
if score and tonumber(score) >= now then
  was_alive = 1
end
local out = {was_alive}
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[4]))
for _, node in ipairs(dead) do
  local node_key = prefix .. 'presence-node:' .. node
  for _, field in ipairs(redis.call('HKEYS', node_key)) do
    local ref, topic = string.match(field, '^([^|]*)|(.*)$')
    local topic_key = prefix .. 'presence:' .. topic
    local topic_field = node .. '|' .. ref
    local value = redis.call('HGET', topic_key, topic_field)
    if value then
      redis.call('HDEL', topic_key, topic_field)
      out[#out + 1] = topic
      out[#out + 1] = topic_field
      out[#out + 1] = value
    end
  end
  redis.call('DEL', node_key)
  redis.call('ZREM', KEYS[1], node)
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return out
