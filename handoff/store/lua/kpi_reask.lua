-- Agent turns re-asked facts the context held: count them (all time, per tenant and fact; and
-- per bucket, in the queue of the customer's last accepted hand-off), and close each open
-- warning for those facts as "sent anyway", in the bucket the warning was counted in.
-- KEYS: the tenant's all-time re-ask counts, this hour's counters, this day's counters,
--       the previous hour's and the previous day's counters, the customer's KPI hash
-- ARGV: retention_ms, now_ms, window_ms (at most an hour), this hour's start, this day's
--       start, then the facts (one per re-ask)
-- Answers {queue, warnings sent anyway}.
local retention, now, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local hour, day = tonumber(ARGV[4]), tonumber(ARGV[5])
local q = redis.call('HGET', KEYS[6], 'q') or '_none'
local sent = 0
for i = 6, #ARGV do
  local fact = ARGV[i]
  redis.call('HINCRBY', KEYS[1], fact, 1)
  redis.call('HINCRBY', KEYS[2], q .. '|r:' .. fact, 1)
  redis.call('HINCRBY', KEYS[3], q .. '|r:' .. fact, 1)
  local open = redis.call('HGET', KEYS[6], 'w:' .. fact)
  if open then
    local at, wq = string.match(open, '^(%d+)|(.*)$')
    at = tonumber(at)
    redis.call('HDEL', KEYS[6], 'w:' .. fact)
    if now - at <= window then
      local h = at >= hour and KEYS[2] or KEYS[4]
      local d = at >= day and KEYS[3] or KEYS[5]
      redis.call('HINCRBY', h, wq .. '|sent:' .. fact, 1)
      redis.call('HINCRBY', d, wq .. '|sent:' .. fact, 1)
      sent = sent + 1
    end
  end
end
for k = 2, 6 do redis.call('PEXPIRE', KEYS[k], retention) end
return {q, sent}
