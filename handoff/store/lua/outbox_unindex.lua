-- Forget a customer in the tenant's outbox index, unless a write that may owe deliveries
-- touched it since `stale_before_ms` (such a write notes the customer before it writes, so
-- an index entry is never dropped under a write that has yet to land).
-- KEYS: the tenant's outbox index
-- ARGV: customer id, stale_before_ms
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) < tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
