-- What an accepted hand-off's brief showed, counted once per hand-off (a replayed accept by the
-- same agent counts nothing), and the customer's queue for the re-asks that may follow.
-- KEYS: this hour's counters, this day's counters, the customer's KPI hash
-- ARGV: retention_ms, queue, hand-off id, verified (0/1), channel switches, journey steps,
--       repeat contact (0/1)
-- Answers 1 if counted, 0 if this hand-off was counted already.
local retention, q, ho = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', KEYS[3], 'a') == ho then return 0 end
redis.call('HSET', KEYS[3], 'a', ho, 'q', q)
redis.call('PEXPIRE', KEYS[3], retention)
local names = {'verified', 'switches', 'steps', 'repeat'}
for k = 1, 2 do
  for i = 1, #names do
    local n = tonumber(ARGV[3 + i])
    if n > 0 then redis.call('HINCRBY', KEYS[k], q .. '|' .. names[i], n) end
  end
  redis.call('PEXPIRE', KEYS[k], retention)
end
return 1
