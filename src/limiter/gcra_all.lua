-- dynagate token bucket (GCRA), every check of one request in one call: the
-- Redis side of src/limiter/gcra_all.rs. Each check is judged exactly as
-- gcra.lua judges a call alone. The request is admitted when every check that
-- is not independent is allowed, and only then do those checks take their
-- costs (all or nothing); an independent check (shadow mode) takes its cost
-- whenever its own buckets hold it, and never keeps the request out.
--
-- KEYS        the buckets of every check, check after check, each check's in
--             the order of its limits: an integer TAT in microseconds of the
--             server's TIME each. On a cluster, all KEYS share one slot.
-- ARGV[1]     the number of checks
-- then, for each check in order:
--             its cost (0 looks without taking), 1 when it is independent
--             else 0, its number of limits n, and n pairs of emission
--             interval in microseconds and capacity in tokens
--
-- Returns {admitted, now_us, then for each check: outcome, remaining,
-- retry_after_us, reset_after_us, limit}: admitted 1 or 0; outcome 1 allowed,
-- 0 denied, -1 never (cost above a capacity); limit is the 1-based index of
-- the deciding limit within the check. An allowed check's remaining and
-- reset_after are those after taking its cost, whether it took it or not.
--
-- Every bucket is read before any is written. A check that takes writes each
-- of its buckets with an expiry at its new TAT (when it is full again). The
-- one other write: a TAT beyond now + a full refill (the server clock stepped
-- back) is clamped to an empty bucket and stored even when nothing is taken.
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

-- Judges one check whose buckets are KEYS[first .. first + #intervals - 1].
local function judge(first, cost, intervals, capacities)
  local n = #intervals
  local c = {first = first, cost = cost, tats = {}, new_tats = {}, clamped = {}}
  local never, longest, waiting = 0, 0, 0
  for i = 1, n do
    local interval = intervals[i]
    local capacity = capacities[i]
    local tau = interval * capacity
    local tat = tonumber(redis.call('GET', KEYS[first + i - 1])) or now
    if tat < now then
      tat = now
    end
    c.clamped[i] = tat > now + tau
    if c.clamped[i] then
      tat = now + tau -- the clock stepped back: an empty bucket, not a lock-out
    end
    c.tats[i] = tat
    if cost > capacity then
      c.new_tats[i] = tat
      if never == 0 then
        never = i
      end
    else
      c.new_tats[i] = tat + cost * interval
      local wait = c.new_tats[i] - now - tau
      if wait > longest then
        longest = wait
        waiting = i
      end
    end
  end
  c.allowed = never == 0 and waiting == 0

  local remaining, fewest, reset_after = -1, 1, 0
  for i = 1, n do
    local interval = intervals[i]
    local tau = interval * capacities[i]
    local after = c.tats[i]
    if c.allowed then
      after = c.new_tats[i]
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

  if never > 0 then
    c.reply = {-1, remaining, 0, reset_after, never}
  elseif waiting > 0 then
    c.reply = {0, remaining, longest, reset_after, waiting}
  else
    c.reply = {1, remaining, 0, reset_after, fewest}
  end
  return c
end

local checks = {}
local admitted = true
local arg, key = 2, 1
for j = 1, tonumber(ARGV[1]) do
  local cost = tonumber(ARGV[arg])
  local independent = ARGV[arg + 1] == '1'
  local n = tonumber(ARGV[arg + 2])
  arg = arg + 3
  local intervals, capacities = {}, {}
  for i = 1, n do
    intervals[i] = tonumber(ARGV[arg])
    capacities[i] = tonumber(ARGV[arg + 1])
    arg = arg + 2
  end
  local c = judge(key, cost, intervals, capacities)
  c.independent = independent
  if not independent and not c.allowed then
    admitted = false
  end
  checks[j] = c
  key = key + n
end

local function store(k, tat)
  local ttl = idiv(tat - now + 999, 1000)
  redis.call('SET', k, string.format('%.0f', tat), 'PX', string.format('%.0f', ttl))
end
local reply = {0, now}
if admitted then
  reply[1] = 1
end
for _, c in ipairs(checks) do
  local take = c.allowed and c.cost > 0 and (admitted or c.independent)
  for i = 1, #c.tats do
    if take then
      store(KEYS[c.first + i - 1], c.new_tats[i])
    elseif c.clamped[i] then
      store(KEYS[c.first + i - 1], c.tats[i])
    end
  end
  for _, v in ipairs(c.reply) do
    reply[#reply + 1] = v
  end
end
return reply
