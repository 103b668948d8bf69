-- dynagate capacity gate, v2: a fleet-wide pacing bucket with an adaptive
-- (AIMD) rate and CoDel-style shedding of a standing queue, the Redis side
-- of src/capacity/gate.rs.
--
-- KEYS[1]  the bucket of a table (or index) and direction: a hash
--          {tat, rate, at, epoch, above, last, large, small}
-- KEYS[2]  optional, same hash tag: the bucket of one partition key value,
--          present only after that key was throttled on its own (hot key)
--
-- Fields: tat    theoretical arrival time, microseconds of the server's TIME:
--                the instant the bucket has paid for every reservation so far
--         rate   the adaptive rate in units per second when it was last cut
--         at     when it was cut (us); the rate climbs back linearly from then
--         epoch  how many times it was cut: a throttle cuts the rate only if
--                the throttled call was admitted in the current epoch, so the
--                in-flight calls of a whole fleet cut it once, not N times
--         above  (KEYS[1] only) when the current spell of waits above the
--                target began (us): CoDel's first_above_time (RFC 8289)
--         last   (KEYS[1] only) the last time a wait was above the target;
--                the spell ends once none was for an interval
--         large  (KEYS[1] only) the tat right after the last large call, or
--                small call judged by `small`, was admitted: the queue up to
--                there is large calls' doing (with the small calls that queued
--                behind them); until an interval after it, large calls count
--         small  (KEYS[1] only) while large calls count, the tat of the small
--                calls admitted meanwhile as if they had the bucket to
--                themselves: how long small calls alone would queue
--
-- ARGV[1] the command; ARGV[2..9] for every command (rates in units/s):
--   max_rate, min_rate (the table bucket's bounds), increase (units/s gained
--   per second), burst_us, key_max_rate, key_min_rate (a key bucket's bounds),
--   target_us, interval_us (the queue's target wait and CoDel interval)
--
-- reserve  ARGV[10] units, ARGV[11] max_wait_us
--   Takes `units` from every bucket. The caller may go at now + wait. When
--   wait > target, a spell starts (or goes on); once it has lasted an
--   interval the queue is standing and a wait above the target is refused
--   (shed) at once. A wait within the target is admitted; it ends a spell
--   that has not stood yet, while a standing one ends only after an interval
--   without a wait above the target. A refusal (shed, or wait > max_wait)
--   reserves nothing; it writes only the spell.
--   Large calls (one that alone takes longer than the target at the rate)
--   do not crowd out small ones: while waits are above the target, a large
--   call is admitted only if it is paid for within half of max_wait (and not
--   at all once the queue stands), and until an interval after the last
--   large call is paid for, a small call in a standing queue is judged by the
--   queue small calls alone would have (small); otherwise by its wait, as
--   above. A small call admitted so moves `large` to its own tat: the small
--   calls that queued behind large ones are still queued when the large ones
--   are paid for, and judged by their wait then, the next would be shed for
--   the large calls' doing.
--   -> {admitted 1|0, wait_us, rate_milli, epoch, key_epoch (-1: no key
--       bucket), standing 1|0}
-- adjust   ARGV[10] delta_milli (consumed - reserved, in thousandths of a unit)
--   Charges more (positive) or gives back (negative) on every bucket.
--   -> {rate_milli}
-- throttle ARGV[10] epoch seen, ARGV[11] decrease (0..1),
--          ARGV[12] scope: "table" cuts KEYS[1], "key" cuts (creates) KEYS[2]
--   -> {cut 1|0, rate_milli of the bucket in scope}
-- state    -> {rate_milli, epoch, backlog_us (until every reservation is
--              paid), standing 1|0}
--
-- Lua numbers are doubles. Redis turns a reply number into an integer by
-- truncating it, so the script rounds first: rates down (milli), waits and
-- backlogs up. A stored rate keeps 14 significant digits (tostring), a stored
-- time is rounded to a whole microsecond ('%.0f'). src/capacity/model.rs is
-- this script in Rust; tests/capacity_model.rs checks the two agree.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local command = ARGV[1]
local max_rate = tonumber(ARGV[2])
local min_rate = tonumber(ARGV[3])
local increase = tonumber(ARGV[4])
local burst_us = tonumber(ARGV[5])
local key_max = tonumber(ARGV[6])
local key_min = tonumber(ARGV[7])
local target = tonumber(ARGV[8])
local interval = tonumber(ARGV[9])

-- The bucket's state now: its rate climbed back since its last cut.
local function load(key, ceiling, floor)
  local v = redis.call('HMGET', key, 'tat', 'rate', 'at', 'epoch', 'above', 'last', 'large',
                       'small')
  local exists = v[2] ~= false
  local rate = tonumber(v[2]) or ceiling
  local at = tonumber(v[3]) or now
  if at > now then
    at = now
  end
  rate = rate + increase * (now - at) / 1000000
  if rate > ceiling then
    rate = ceiling
  end
  if rate < floor then
    rate = floor
  end
  local tat = tonumber(v[1]) or now
  if tat < now then
    tat = now
  end
  return {exists = exists, tat = tat, rate = rate, epoch = tonumber(v[4]) or 0,
          ceiling = ceiling, floor = floor, above = tonumber(v[5]),
          last = tonumber(v[6]), large = tonumber(v[7]), small = tonumber(v[8])}
end

-- A spell of waits above the target goes on until no wait was above it for
-- an interval.
local function live(b)
  return b.last ~= nil and now - b.last < interval
end

-- The queue stands: its waits have been above the target for an interval.
local function standing(b)
  return live(b) and now - b.above >= interval
end

-- Keeps a bucket while it matters: until it has paid for its reservations,
-- its rate is back at the ceiling and its spell is over. A bucket that
-- expired is a fresh one.
local function store(key, b, fields)
  redis.call('HSET', key, unpack(fields))
  local paid = b.tat - now + burst_us
  local recovered = 0
  if b.rate < b.ceiling and increase > 0 then
    recovered = (b.ceiling - b.rate) / increase * 1000000
  end
  local spell = 0
  if b.last ~= nil then
    spell = b.last + interval - now
  end
  local keep = math.max(paid, recovered, spell) / 1000 + 1000
  redis.call('PEXPIRE', key, string.format('%.0f', math.ceil(keep)))
end

local function milli(rate)
  return math.floor(rate * 1000)
end

local function fmt(x)
  return string.format('%.0f', x)
end

if command == 'state' then
  local b = load(KEYS[1], max_rate, min_rate)
  local stands = 0
  if standing(b) then
    stands = 1
  end
  return {milli(b.rate), b.epoch, math.ceil(b.tat - now), stands}
end

if command == 'reserve' then
  local units = tonumber(ARGV[10])
  local max_wait = tonumber(ARGV[11])
  local buckets = {load(KEYS[1], max_rate, min_rate)}
  local key_epoch = -1
  if KEYS[2] then
    local k = load(KEYS[2], key_max, key_min)
    if k.exists then
      buckets[2] = k
      key_epoch = k.epoch
    end
  end
  local wait = 0
  for _, b in ipairs(buckets) do
    local cost = units * 1000000 / b.rate
    b.cost = cost
    b.new_tat = b.tat + cost
    -- An idle bucket lets any one call through at once, however small the
    -- burst is next to the call's units.
    local w = b.new_tat - math.max(burst_us, cost) - now
    if w > wait then
      wait = w
    end
  end
  local t = buckets[1]
  -- A large call alone takes longer than the target at the rate. Until an
  -- interval after the last one is paid for, a small call is judged by the
  -- queue of small calls alone.
  local own = t.cost
  local large = own > target
  local large_counts = t.large ~= nil and t.large + interval > now
  local small_wait = 0
  if t.small ~= nil and t.small > now then
    small_wait = t.small - now
  end
  local admitted, stands
  -- What to write on the table bucket besides tat: the spell, or its end.
  local spell = nil
  local ended = false
  if wait > target then
    if not live(t) then
      t.above = now
    end
    t.last = now
    spell = {'above', fmt(t.above), 'last', fmt(t.last)}
    stands = now - t.above >= interval
    if large then
      admitted = not stands and wait + own <= max_wait / 2
    else
      admitted = wait <= max_wait and (not stands or (large_counts and small_wait <= target))
    end
  else
    stands = standing(t)
    admitted = wait <= max_wait
    -- Within the target before the queue stood: a burst, not a standing
    -- queue. A standing queue ends only when its spell does.
    ended = admitted and not stands and t.above ~= nil
  end
  if admitted then
    for i, b in ipairs(buckets) do
      b.tat = b.new_tat
    end
  end
  if ended then
    redis.call('HDEL', KEYS[1], 'above', 'last')
    t.last = nil
  end
  if admitted or spell then
    local fields = {'tat', fmt(t.tat)}
    if admitted and large then
      fields[#fields + 1] = 'large'
      fields[#fields + 1] = fmt(t.tat)
    elseif admitted and large_counts then
      fields[#fields + 1] = 'small'
      fields[#fields + 1] = fmt(now + small_wait + own)
      fields[#fields + 1] = 'large'
      fields[#fields + 1] = fmt(t.tat)
    end
    if spell then
      for _, f in ipairs(spell) do
        fields[#fields + 1] = f
      end
    end
    store(KEYS[1], t, fields)
  end
  if admitted and buckets[2] then
    store(KEYS[2], buckets[2], {'tat', fmt(buckets[2].tat)})
  end
  local a, s = 0, 0
  if admitted then
    a = 1
  end
  if stands then
    s = 1
  end
  return {a, math.ceil(wait), milli(t.rate), t.epoch, key_epoch, s}
end

if command == 'adjust' then
  local delta = tonumber(ARGV[10]) / 1000
  local result = 0
  for i = 1, #KEYS do
    local b
    if i == 1 then
      b = load(KEYS[i], max_rate, min_rate)
    else
      b = load(KEYS[i], key_max, key_min)
    end
    if i == 1 or b.exists then
      b.tat = b.tat + delta * 1000000 / b.rate
      if b.tat < now then
        b.tat = now
      end
      store(KEYS[i], b, {'tat', fmt(b.tat)})
      if i == 1 then
        result = milli(b.rate)
      end
    end
  end
  return {result}
end

if command == 'throttle' then
  local seen = tonumber(ARGV[10])
  local decrease = tonumber(ARGV[11])
  local scope = ARGV[12]
  local key, b
  if scope == 'key' then
    key = KEYS[2]
    b = load(key, key_max, key_min)
    if not b.exists then
      -- First throttle of this key alone: start its own bucket at the
      -- table's rate, cut at once, then cut on every further throttle.
      local t = load(KEYS[1], max_rate, min_rate)
      b.rate = math.min(key_max, t.rate)
      seen = 0
    end
  else
    key = KEYS[1]
    b = load(key, max_rate, min_rate)
  end
  if b.epoch ~= seen then
    return {0, milli(b.rate)}
  end
  b.rate = math.max(b.floor, b.rate * decrease)
  b.epoch = b.epoch + 1
  store(key, b, {'tat', fmt(b.tat), 'rate', tostring(b.rate), 'at', fmt(now), 'epoch', b.epoch})
  return {1, milli(b.rate)}
end

return redis.error_reply('dynagate capacity: unknown command ' .. tostring(command))
