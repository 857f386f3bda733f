-- Takes from GCRA token buckets (onair.domain.chat.TokenBucket, line for line), in order.
-- KEYS[i]    bucket i: its value is the "theoretical arrival time" (TAT) of its next token
-- ARGV[1]    interval = 1 / rate (seconds), ARGV[2] burst (tokens), ARGV[2 + i] now of take i
-- Returns {allowed_1, retry_after_1, allowed_2, …}: 1 and "0" when allowed, 0 and the seconds
-- until a token is there when refused. A key may appear twice; the second take sees the first.
-- Numbers go in and out as strings ("%.17g"): Redis would cut a Lua number to an integer, and
-- 17 digits round-trip a double.
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  local now = tonumber(ARGV[2 + i])
  local tat = tonumber(redis.call('GET', key))
  local base = now
  if tat ~= nil and tat >= now then
    base = tat
  end
  local new_tat = base + interval
  local allow_at = new_tat - burst * interval
  if allow_at - now > 1e-9 then
    out[#out + 1] = 0
    out[#out + 1] = string.format('%.17g', allow_at - now)
  else
    -- A bucket is full again (and forgotten) once now passes its TAT.
    local ttl_ms = math.max(1, math.ceil((new_tat - now) * 1000))
    redis.call('SET', key, string.format('%.17g', new_tat), 'PX', ttl_ms)
    out[#out + 1] = 1
    out[#out + 1] = '0'
  end
end
return out
