-- dynagate token bucket settle, v1: the Redis side of src/limiter/settle.rs.
-- Moves tokens into (or back into) the buckets of gcra.lua without deciding.
--
-- KEYS[i]     the bucket of limit i, as in gcra.lua (one hash tag, one slot)
-- ARGV[1]     tokens: a debit when positive, a refund when negative
-- ARGV[2i]    emission interval of limit i in microseconds (time per token)
-- ARGV[2i+1]  capacity of limit i in tokens
--
-- Returns now_us. A debit sets every TAT to
-- min(max(tat, now) + tokens * T, now + tau): taken even when the bucket does
-- not hold the tokens, but never more than empty (a TAT beyond now + tau is
-- what gcra.lua reads as a backward clock step and clamps). A refund sets a
-- TAT above now (read as at most now + tau, as gcra.lua reads it) to
-- max(tat - tokens * T, now), deleting the key when that is now (full); a
-- missing or passed TAT (full) stays as it is. Written keys follow gcra.lua's
-- storage contract: an integer TAT expiring at the TAT.
--
-- Lua numbers are doubles: at most capacity tokens move (both bounds clamp
-- beyond that), so every value stays below 2^53 as in gcra.lua, and integers
-- are formatted with %.0f.

local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tokens = tonumber(ARGV[1])

local function store(i, tat)
  local ttl = idiv(tat - now + 999, 1000)
  redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', string.format('%.0f', ttl))
end

for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local capacity = tonumber(ARGV[2 * i + 1])
  local empty = now + interval * capacity
  local moved = math.min(math.abs(tokens), capacity) * interval
  local stored = tonumber(redis.call('GET', KEYS[i]))
  if tokens > 0 then
    local tat = stored or now
    if tat < now then
      tat = now
    end
    store(i, math.min(tat + moved, empty))
  elseif tokens < 0 and stored and stored > now then
    local tat = math.max(math.min(stored, empty) - moved, now)
    if tat > now then
      store(i, tat)
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
return now
