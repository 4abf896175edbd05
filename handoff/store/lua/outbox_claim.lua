-- Take over the webhook deliveries a customer write recorded but whose writer died before
-- the tenant's delivery queue had them (see customer_write.lua).
-- KEYS: the customer's outbox hash
-- ARGV: now_ms, stale_before_ms, limit
-- Answers {field, value, ...} of the entries taken (stamped anew, so that no other sweeper or
-- writer takes them while this one queues them), then how many entries remain besides.
local outbox, now, stale_before, limit = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local held = redis.call('HGETALL', outbox)
local taken = {}
for h = 1, #held, 2 do
  local stamp, rest = string.match(held[h], '^(%d+):(.*)$')
  if stamp and tonumber(stamp) < stale_before and #taken < 2 * limit then
    local field = now .. ':' .. rest
    redis.call('HDEL', outbox, held[h])
    redis.call('HSET', outbox, field, held[h + 1])
    taken[#taken + 1] = field
    taken[#taken + 1] = held[h + 1]
  end
end
return {taken, #held / 2 - #taken / 2}
