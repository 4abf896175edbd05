-- Move one hand-off from an allowed status to another, atomically: exactly one caller wins.
-- KEYS: hand-off hash, queue events, deadline, then for each status in STATUSES order its
--       all-queues sorted set (6 keys), then (optional) this hour's and this day's effort
--       counters and their all-queues time-to-accept histograms (see handoff/store/kpis.py)
-- ARGV: now_ms, events_maxlen, allowed statuses (space separated), new status, event type,
--       retention_ms, then for each status in STATUSES order the name of its one-queue sorted
--       set less the queue (6), then the same of this hour's and this day's one-queue
--       histograms (2, unused without the effort keys), then field value pairs to set
-- The one-queue names end in the hand-off's own queue, read here, so that nobody has to read
-- the hand-off before asking (all of them share the tenant's hash slot).
-- A pending hand-off past its deadline is expired first, whoever asks (and says so).
-- Answers {outcome, status before, '1' if it expired just now, the hand-off as a flat hash}.
local STATUSES = {'pending', 'accepted', 'resolved', 'cancelled', 'expired', 'handed_back'}
local FIELDS = 15
local ho, events, deadline = KEYS[1], KEYS[2], KEYS[3]
local now, maxlen, allowed, target, event = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local retention = ARGV[6]

local status = redis.call('HGET', ho, 'status')
if not status then return {'missing', '', '0', {}} end
local queue = redis.call('HGET', ho, 'queue')

local function zsets(status)
  for s = 1, #STATUSES do
    if STATUSES[s] == status then return ARGV[6 + s] .. queue, KEYS[3 + s] end
  end
end

local function snapshot()
  local flat, record = redis.call('HGETALL', ho), {}
  for i = 1, #flat, 2 do record[flat[i]] = flat[i + 1] end
  record['code'] = nil
  return record
end

local function move(from, to, type)
  local id, score = redis.call('HGET', ho, 'id'), redis.call('HGET', ho, 'score')
  local a1, a2 = zsets(from)
  local b1, b2 = zsets(to)
  redis.call('ZREM', a1, id); redis.call('ZREM', a2, id)
  redis.call('ZADD', b1, score, id); redis.call('ZADD', b2, score, id)
  if from == 'pending' then redis.call('ZREM', deadline, id) end
  redis.call('HSET', ho, 'status', to, 'updated_ms', now)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 't', type,
             'd', cmsgpack.pack(snapshot()))
end

-- Effort KPIs: the transition in the queue's counters, and an accept's wait in whole seconds.
local function count(status)
  if #KEYS < 13 then return end
  for k = 10, 11 do redis.call('HINCRBY', KEYS[k], queue .. '|' .. status, 1) end
  local waits = {KEYS[12], KEYS[13], ARGV[13] .. queue, ARGV[14] .. queue}
  if status == 'accepted' then
    local at = tonumber(redis.call('HGET', ho, 'accepted_ms') or now)
    local waited = math.max(0, math.floor((at - tonumber(redis.call('HGET', ho, 'created_ms'))) / 1000))
    for _, key in ipairs(waits) do redis.call('HINCRBY', key, waited, 1) end
  end
  for k = 10, 11 do redis.call('PEXPIRE', KEYS[k], retention) end
  for _, key in ipairs(waits) do redis.call('PEXPIRE', key, retention) end
end

local expired_now = '0'
if status == 'pending' and tonumber(redis.call('HGET', ho, 'expires_ms')) <= tonumber(now) then
  redis.call('HSET', ho, 'closed_ms', now)
  move('pending', 'expired', 'handoff.expired')
  count('expired')
  status = 'expired'
  expired_now = '1'
end
if not string.find(' ' .. allowed .. ' ', ' ' .. status .. ' ', 1, true) then
  return {'conflict', status, expired_now, redis.call('HGETALL', ho)}
end
if #ARGV >= FIELDS then redis.call('HSET', ho, unpack(ARGV, FIELDS)) end
move(status, target, event)
count(target)
for k = 1, 9 do redis.call('PEXPIRE', KEYS[k], retention) end
for s = 1, #STATUSES do redis.call('PEXPIRE', ARGV[6 + s] .. queue, retention) end
return {'ok', status, expired_now, redis.call('HGETALL', ho)}
