-- Queue webhook deliveries of one tenant, atomically: each is stored and due together.
-- KEYS: the tenant's due zset, the customer's delivery index, then one hash per delivery
-- ARGV: due_ms, retention_ms, fields per delivery F, then per delivery its id and F
--       field/value pairs
-- A delivery carries customer data: it expires with the tenant's retention, like the customer.
-- One already queued is left as it is: the outbox sweeper may queue again a delivery whose
-- writer queued it and died before it could say so (see customer_write.lua).
local due, index = KEYS[1], KEYS[2]
local at, retention, f = ARGV[1], ARGV[2], tonumber(ARGV[3])
local i, queued = 4, 0
for k = 3, #KEYS do
  local id = ARGV[i]
  if redis.call('EXISTS', KEYS[k]) == 0 then
    redis.call('HSET', KEYS[k], unpack(ARGV, i + 1, i + 2 * f))
    redis.call('PEXPIRE', KEYS[k], retention)
    redis.call('ZADD', due, at, id)
    redis.call('SADD', index, id)
    queued = queued + 1
  end
  i = i + 1 + 2 * f
end
redis.call('PEXPIRE', due, retention)
redis.call('PEXPIRE', index, retention)
return queued
