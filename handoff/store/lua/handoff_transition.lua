-- Move one hand-off from an allowed status to another, atomically: exactly one caller wins.
-- KEYS: hand-off hash, queue events, deadline, then for each status in STATUSES order its
--       one-queue and all-queues sorted sets (12 keys)
-- ARGV: now_ms, events_maxlen, allowed statuses (space separated), new status, event type,
--       retention_ms,
--       then field value pairs to set
-- A pending hand-off past its deadline is expired first, whoever asks (and says so).
-- Answers {outcome, status before, '1' if it expired just now, the hand-off as a flat hash}.
local STATUSES = {'pending', 'accepted', 'resolved', 'cancelled', 'expired', 'handed_back'}
local ho, events, deadline = KEYS[1], KEYS[2], KEYS[3]
local now, maxlen, allowed, target, event = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local retention = ARGV[6]

local function zsets(status)
  for s = 1, #STATUSES do
    if STATUSES[s] == status then return KEYS[2 + 2 * s], KEYS[3 + 2 * s] end
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

local status = redis.call('HGET', ho, 'status')
if not status then return {'missing', '', '0', {}} end
local expired_now = '0'
if status == 'pending' and tonumber(redis.call('HGET', ho, 'expires_ms')) <= tonumber(now) then
  redis.call('HSET', ho, 'closed_ms', now)
  move('pending', 'expired', 'handoff.expired')
  status = 'expired'
  expired_now = '1'
end
if not string.find(' ' .. allowed .. ' ', ' ' .. status .. ' ', 1, true) then
  return {'conflict', status, expired_now, redis.call('HGETALL', ho)}
end
if #ARGV > 6 then redis.call('HSET', ho, unpack(ARGV, 7)) end
move(status, target, event)
for k = 1, #KEYS do redis.call('PEXPIRE', KEYS[k], retention) end
return {'ok', status, expired_now, redis.call('HGETALL', ho)}
