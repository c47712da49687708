-- Rate-limit decisions for a batch of requests, each atomically: Redis runs a script to
-- completion before any other command, so no other instance can read or spend between our check
-- and our spend.
--
-- The arithmetic is that of src/algorithm/*.rs, in microseconds (the resolution of TIME, and
-- small enough that every sum stays an exact integer in Lua's doubles).
--
-- A batch holds the requests that were waiting when the call was sent (see src/store/redis.rs);
-- one call amortises the script's start-up over all of them. Each request is a group of checks,
-- one per rule that applies to it, decided all-or-nothing: phase 1 decides every check of the
-- group, phase 2 spends only if no enforced check rejected, so a request one rule rejects costs
-- the other rules nothing. Groups are independent of each other, and decided in order.
--
-- KEYS       the state of every check, in order
-- ARGV[1]    "" to read the time from Redis (always, in production), or microseconds since
--            the epoch (tests with an injected clock)
-- ARGV[2]    the number of groups
-- then, per group: the number of checks in it, and five arguments per check:
--            algorithm (tb, lb, fw, sl, sc), a (interval or window, µs), b (burst, capacity or
--            limit), units (0 asks without spending), enforced (1, or 0 for shadow mode)
--
-- Returns five integers per check, in order: allowed (1/0), remaining, reset_after (µs),
-- retry_after (µs), delay (µs).

local now
-- Expiry runs on Redis's own clock. With an injected clock (tests), that clock and the script's
-- `now` are unrelated, and a key given 1 ms to live could vanish while the test's clock stands
-- still; so there every key lives at least a minute of real time.
local min_ttl_ms = 1
if ARGV[1] == '' then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
else
  now = tonumber(ARGV[1])
  min_ttl_ms = 60000
end

-- Numbers passed to redis.call become strings through a float format that can drop digits of
-- a 16-digit timestamp; every number stored or sent is formatted as an integer instead.
local function int(n)
  return string.format('%d', n)
end

-- A TTL in whole milliseconds for a state that matters for `micros` more, rounded up.
local function ttl(micros)
  return int(math.max(min_ttl_ms, math.ceil(micros / 1000)))
end

-- floor(a / b) for non-negative integers below 2^53, guarded against a quotient that rounds up
-- to the next integer.
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 end
  return q
end

-- Each algorithm: load(key, a, b) -> state; check(state, a, b, units) -> wait (0: allowed);
-- spend(key, state, a, b, units) -> new state; status(state, a, b) -> remaining, reset_after;
-- delay(state) -> µs.

local gcra = {}
function gcra.load(key)
  return { tat = tonumber(redis.call('GET', key)) }
end
function gcra.next(state, interval, units)
  return math.max(state.tat or now, now) + units * interval
end
function gcra.check(state, interval, burst, units)
  return math.max(0, gcra.next(state, interval, units) - burst * interval - now)
end
function gcra.spend(key, state, interval, burst, units)
  local tat = gcra.next(state, interval, units)
  -- The TTL is the time until the bucket is full again: a key that expires is a full bucket.
  redis.call('SET', key, int(tat), 'PX', ttl(tat - now))
  return { tat = tat }
end
function gcra.status(state, interval, burst)
  local backlog = math.max(0, (state.tat or now) - now)
  return idiv(burst * interval - backlog, interval), backlog
end
function gcra.delay(state)
  return math.max(0, (state.tat or now) - now)
end

local fixed = {}
function fixed.load(key, window)
  local index = math.floor(now / window)
  local stored = redis.call('GET', key)
  local spent = 0
  if stored then
    local i, s = string.match(stored, '^(%d+):(%d+)$')
    -- A later window than now's (Redis's clock stepped back) still counts.
    if tonumber(i) >= index then index, spent = tonumber(i), tonumber(s) end
  end
  return { index = index, spent = spent }
end
function fixed.check(state, window, limit, units)
  if state.spent + units <= limit then return 0 end
  return (state.index + 1) * window - now
end
function fixed.spend(key, state, window, limit, units)
  local spent = state.spent + units
  -- Kept until the window ends; a new window is a fresh start by definition.
  local window_left = (state.index + 1) * window - now
  redis.call('SET', key, int(state.index) .. ':' .. int(spent), 'PX', ttl(window_left))
  return { index = state.index, spent = spent }
end
function fixed.status(state, window, limit)
  if state.spent == 0 then return limit, 0 end
  return limit - state.spent, (state.index + 1) * window - now
end

-- Sliding log: a sorted set of one member per unit, scored by the time it was spent.
local log = {}
function log.load(key, window)
  -- Units spent at or before now - window no longer count (they count until t + window,
  -- exclusive), so dropping them changes no decision.
  redis.call('ZREMRANGEBYSCORE', key, '-inf', int(now - window))
  local live = redis.call('ZCARD', key)
  local newest = nil
  if live > 0 then
    newest = tonumber(redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2])
  end
  return { key = key, live = live, newest = newest }
end
function log.check(state, window, limit, units)
  local excess = state.live + units - limit
  if excess <= 0 then return 0 end
  -- Capacity returns when the oldest `excess` units have left the window.
  local leaving = redis.call('ZRANGE', state.key, excess - 1, excess - 1, 'WITHSCORES')
  return tonumber(leaving[2]) + window - now
end
function log.spend(key, state, window, limit, units)
  -- If Redis's clock stepped back, the units are logged at the newest time already logged, as
  -- the in-process log does: counted a little longer, never less.
  local at = math.max(now, state.newest or now)
  -- Members must be unique: the time and the unit's position in the log are. Added in batches
  -- of 256, to stay far from Lua's limit on the arguments of one call.
  local args = {}
  for i = 1, units do
    table.insert(args, int(at))
    table.insert(args, int(at) .. '-' .. int(state.live + i))
    if #args == 512 or i == units then
      redis.call('ZADD', key, unpack(args))
      args = {}
    end
  end
  redis.call('PEXPIRE', key, ttl(at + window - now))
  return { key = key, live = state.live + units, newest = at }
end
function log.status(state, window, limit)
  if not state.newest then return limit, 0 end
  return math.max(0, limit - state.live), state.newest + window - now
end

-- Sliding counter: "index:current:previous" in one string.
local counter = {}
function counter.load(key, window)
  local index = math.floor(now / window)
  local current, previous = 0, 0
  local stored = redis.call('GET', key)
  if stored then
    local i, c, p = string.match(stored, '^(%d+):(%d+):(%d+)$')
    i, c, p = tonumber(i), tonumber(c), tonumber(p)
    if i >= index then
      index, current, previous = i, c, p
    elseif i + 1 == index then
      previous = c
    end
  end
  return { index = index, current = current, previous = previous }
end
local function earliest_in(window, previous, room)
  if previous == 0 then return 0 end
  return math.max(0, window - math.min(window, idiv(room * window, previous)))
end
function counter.check(state, window, limit, units)
  local start = state.index * window
  local weighed = state.previous * (start + window - now) + (state.current + units) * window
  if weighed <= limit * window then return 0 end
  local room = limit - state.current - units
  if room >= 0 then
    return start + earliest_in(window, state.previous, room) - now
  end
  return start + window + earliest_in(window, state.current, limit - units) - now
end
function counter.spend(key, state, window, limit, units)
  local current = state.current + units
  -- The counters matter until the end of the window after this one.
  local counters_matter = (state.index + 2) * window - now
  redis.call('SET', key, int(state.index) .. ':' .. int(current) .. ':' .. int(state.previous),
    'PX', ttl(counters_matter))
  return { index = state.index, current = current, previous = state.previous }
end
function counter.status(state, window, limit)
  local start = state.index * window
  local weighed = state.previous * (start + window - now) + state.current * window
  local used = idiv(weighed + window - 1, window)
  local reset = 0
  if state.current > 0 then
    reset = start + 2 * window - now
  elseif state.previous > 0 then
    reset = start + window - now
  end
  return math.max(0, limit - used), reset
end

local algorithms = { tb = gcra, lb = gcra, fw = fixed, sl = log, sc = counter }

local reply = {}
local key_index = 0
local arg = 3
for _ = 1, tonumber(ARGV[2]) do
  local checks = {}
  local admitted = true
  for i = 1, tonumber(ARGV[arg]) do
    key_index = key_index + 1
    local c = {
      key = KEYS[key_index],
      algorithm = algorithms[ARGV[arg + 1]],
      kind = ARGV[arg + 1],
      a = tonumber(ARGV[arg + 2]),
      b = tonumber(ARGV[arg + 3]),
      units = tonumber(ARGV[arg + 4]),
      enforced = ARGV[arg + 5] == '1',
    }
    arg = arg + 5
    c.state = c.algorithm.load(c.key, c.a, c.b)
    c.wait = c.algorithm.check(c.state, c.a, c.b, math.max(1, c.units))
    if c.wait > 0 and c.enforced then admitted = false end
    checks[i] = c
  end
  arg = arg + 1

  for _, c in ipairs(checks) do
    local delay = 0
    if c.kind == 'lb' and c.wait == 0 then delay = gcra.delay(c.state) end
    if admitted and c.wait == 0 and c.units > 0 then
      c.state = c.algorithm.spend(c.key, c.state, c.a, c.b, c.units)
    end
    local remaining, reset = c.algorithm.status(c.state, c.a, c.b)
    local allowed = 0
    if c.wait == 0 then allowed = 1 end
    reply[#reply + 1] = allowed
    reply[#reply + 1] = remaining
    reply[#reply + 1] = reset
    reply[#reply + 1] = c.wait
    reply[#reply + 1] = delay
  end
end
return reply
