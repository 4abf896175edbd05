-- The re-ask check warned an agent about facts: open one warning per fact not already open.
-- A warning stays open window_ms; a re-ask turn for its fact while it is open closes it as
-- "sent anyway" (kpi_reask.lua), otherwise it was heeded.
-- KEYS: this hour's counters, this day's counters, the customer's KPI hash
-- ARGV: retention_ms, now_ms, window_ms, then the facts
-- Answers {queue, warnings opened}.
local retention, now, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local q = redis.call('HGET', KEYS[3], 'q') or '_none'
local opened = 0
for i = 4, #ARGV do
  local fact = ARGV[i]
  local open = redis.call('HGET', KEYS[3], 'w:' .. fact)
  local at = open and tonumber(string.match(open, '^(%d+)'))
  if not at or now - at > window then
    redis.call('HSET', KEYS[3], 'w:' .. fact, now .. '|' .. q)
    for k = 1, 2 do redis.call('HINCRBY', KEYS[k], q .. '|warned:' .. fact, 1) end
    opened = opened + 1
  end
end
if opened > 0 then
  for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], retention) end
end
return {q, opened}
