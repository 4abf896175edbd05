-- Raise one supervisor alert in its tenant's slot, atomically: its record, its place in the open
-- list and the time index, the alert stream's event and its webhook deliveries.
-- KEYS: the alert, the open list, the time index (`raised`), the alert stream, the customer's
--       alert index, the tenant's webhook due zset, the customer's webhook delivery index, then
--       one hash per webhook delivery
-- ARGV: raised_ms, retention_ms, events_maxlen, alert id, record (msgpack), fields per delivery
--       F, then per delivery its id and F field/value pairs
-- The customer's write recorded the alert first (customer_write.lua) and whichever process
-- publishes it (the writer, a later writer or the outbox sweeper) may be the second to try: an
-- alert that exists already is left as it is, and nothing is sent twice.
local alert, open, raised, events, about = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local due, delivered = KEYS[6], KEYS[7]
local at, retention, maxlen = ARGV[1], ARGV[2], ARGV[3]
local id, record, f = ARGV[4], ARGV[5], tonumber(ARGV[6])
if redis.call('EXISTS', alert) == 1 then return 0 end

redis.call('HSET', alert, 'd', record, 'status', 'open', 'raised_ms', at)
redis.call('ZADD', open, 0, id)
redis.call('ZADD', raised, at, id)
redis.call('SADD', about, id)
-- An alert quotes what the customer said: it is kept no longer than the customer would be.
for _, key in ipairs({alert, open, raised, about}) do redis.call('PEXPIRE', key, retention) end
redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 't', 'alert.raised', 'd', record)

local i = 7
for k = 8, #KEYS do
  local delivery = ARGV[i]
  if redis.call('EXISTS', KEYS[k]) == 0 then
    redis.call('HSET', KEYS[k], unpack(ARGV, i + 1, i + 2 * f))
    redis.call('PEXPIRE', KEYS[k], retention)
    redis.call('ZADD', due, at, delivery)
    redis.call('SADD', delivered, delivery)
  end
  i = i + 1 + 2 * f
end
if #KEYS > 7 then
  redis.call('PEXPIRE', due, retention)
  redis.call('PEXPIRE', delivered, retention)
end
return 1
