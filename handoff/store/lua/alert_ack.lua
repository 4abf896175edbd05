-- Acknowledge one open alert, atomically: its record, the open and acknowledged lists, the
-- alert stream's event and its webhook deliveries. Exactly one acknowledgement wins.
-- KEYS: the alert, the open list, the acknowledged list, the alert stream, the tenant's webhook
--       due zset, the customer's webhook delivery index, then one hash per webhook delivery
-- ARGV: now_ms, retention_ms, events_maxlen, alert id, acknowledged record (msgpack), by,
--       fields per delivery F, then per delivery its id and F field/value pairs
-- Answers 'ok', 'done' (acknowledged before: nothing changes) or 'missing'.
local alert, open, acked, events, due, delivered = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5],
  KEYS[6]
local now, retention, maxlen, id, record, by = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],
  ARGV[6]
local f = tonumber(ARGV[7])
local status = redis.call('HGET', alert, 'status')
if not status then return 'missing' end
if status ~= 'open' then return 'done' end

redis.call('HSET', alert, 'd', record, 'status', 'acknowledged', 'ack_ms', now, 'ack_by', by)
redis.call('ZREM', open, id)
redis.call('ZADD', acked, 0, id)
for _, key in ipairs({alert, acked}) do redis.call('PEXPIRE', key, retention) end
redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 't', 'alert.acknowledged', 'd', record)

local i = 8
for k = 7, #KEYS do
  local delivery = ARGV[i]
  if redis.call('EXISTS', KEYS[k]) == 0 then
    redis.call('HSET', KEYS[k], unpack(ARGV, i + 1, i + 2 * f))
    redis.call('PEXPIRE', KEYS[k], retention)
    redis.call('ZADD', due, now, delivery)
    redis.call('SADD', delivered, delivery)
  end
  i = i + 1 + 2 * f
end
if #KEYS > 6 then
  redis.call('PEXPIRE', due, retention)
  redis.call('PEXPIRE', delivered, retention)
end
return 'ok'
