-- dynagate token bucket (GCRA), v1: the Redis side of src/limiter/gcra.rs.
--
-- KEYS[i]     the bucket of limit i: an integer TAT in microseconds of the
--             server's TIME. All KEYS carry one hash tag (one cluster slot).
-- ARGV[1]     cost: tokens to take from every bucket (0 looks without taking)
-- ARGV[2i]    emission interval of limit i in microseconds (time per token)
-- ARGV[2i+1]  capacity of limit i in tokens
--
-- Returns {outcome, remaining, retry_after_us, reset_after_us, limit, now_us}:
-- outcome 1 allowed, 0 denied, -1 never (cost above a capacity); limit is the
-- 1-based index of the deciding limit. Every bucket is written, with an expiry
-- at its new TAT (when it is full again), only when all limits allow. The one
-- other write: a TAT beyond now + a full refill (the server clock stepped
-- back) is clamped to an empty bucket and that is stored even on a denial.
--
-- Lua numbers are doubles: every value here stays below 2^53 (the Rust side
-- caps a bucket's refill time at 2^45 us) and integers are formatted with
-- %.0f, never with Lua's default number format.

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
local cost = tonumber(ARGV[1])
local n = #KEYS

local tats, new_tats, clamped = {}, {}, {}
local never, longest, waiting = 0, 0, 0
for i = 1, n do
  local interval = tonumber(ARGV[2 * i])
  local capacity = tonumber(ARGV[2 * i + 1])
  local tau = interval * capacity
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then
    tat = now
  end
  clamped[i] = tat > now + tau
  if clamped[i] then
    tat = now + tau -- the clock stepped back: an empty bucket, not a lock-out
  end
  tats[i] = tat
  if cost > capacity then
    new_tats[i] = tat
    if never == 0 then
      never = i
    end
  else
    new_tats[i] = tat + cost * interval
    local wait = new_tats[i] - now - tau
    if wait > longest then
      longest = wait
      waiting = i
    end
  end
end
local allowed = never == 0 and waiting == 0

local remaining, fewest, reset_after = -1, 1, 0
for i = 1, n do
  local interval = tonumber(ARGV[2 * i])
  local tau = interval * tonumber(ARGV[2 * i + 1])
  local after = tats[i]
  if allowed then
    after = new_tats[i]
  end
  local left = idiv(now + tau - after, interval)
  if remaining < 0 or left < remaining then
    remaining = left
    fewest = i
  end
  if after - now > reset_after then
    reset_after = after - now
  end
end

local function store(i, tat)
  local ttl = idiv(tat - now + 999, 1000)
  redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', string.format('%.0f', ttl))
end
for i = 1, n do
  if allowed and cost > 0 then
    store(i, new_tats[i])
  elseif clamped[i] then
    store(i, tats[i])
  end
end

if never > 0 then
  return {-1, remaining, 0, reset_after, never, now}
elseif waiting > 0 then
  return {0, remaining, longest, reset_after, waiting, now}
end
return {1, remaining, 0, reset_after, fewest, now}
