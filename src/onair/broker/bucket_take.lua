-- One take from a GCRA token bucket (onair.domain.chat.TokenBucket, line for line).
-- KEYS[1]  the bucket: its value is the "theoretical arrival time" of the next token
-- ARGV[1]  now (seconds), ARGV[2] interval = 1 / rate (seconds), ARGV[3] burst (tokens)
-- Returns {1, "0"} when allowed, {0, retry_after} when refused. Numbers go in and out as
-- strings ("%.17g"): Redis would cut a Lua number to an integer, and 17 digits round-trip a double.
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
local base = now
if tat ~= nil and tat >= now then
  base = tat
end
local new_tat = base + interval
local allow_at = new_tat - burst * interval
if allow_at - now > 1e-9 then
  return {0, string.format('%.17g', allow_at - now)}
end
-- A bucket is full again (and forgotten) once now passes its TAT.
local ttl_ms = math.max(1, math.ceil((new_tat - now) * 1000))
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', ttl_ms)
return {1, '0'}
