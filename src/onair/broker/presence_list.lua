-- presence_list: the entries of a topic whose node is still alive, as a flat field/value array.
-- KEYS[1]  topic hash   {prefix}presence:{topic}
-- KEYS[2]  nodes zset   {prefix}presence-nodes
-- Entries of expired nodes stay until a heartbeat sweeps them (and announces their leave), but
-- are never listed, so a crashed node's members disappear from the state within ttl.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local alive = {}
local out = {}
for i = 1, #all, 2 do
  local node = string.match(all[i], '^([^|]*)|')
  local ok = alive[node]
  if ok == nil then
    local score = redis.call('ZSCORE', KEYS[2], node)
    ok = (score and tonumber(score) >= now) or false
    alive[node] = ok
  end
  if ok then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
