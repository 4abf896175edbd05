-- Record what one attempt came to, only if the caller still holds the claim: a process whose
-- lease ran out while it waited must not undo what the next holder did.
-- KEYS: the tenant's due zset, the delivery hash, the subscription's dead letters, the
--       customer's delivery index
-- ARGV: outcome ('ok', 'drop', 'retry' or 'dead'), claim token, delivery id, next_due_ms,
--       retention_ms, then field/value pairs to set on the delivery
local due, delivery, dead, index = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local outcome, token, id = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', delivery, 'claim') ~= token then return 'lost' end
if outcome == 'ok' or outcome == 'drop' then
  redis.call('ZREM', due, id)
  redis.call('DEL', delivery)
  redis.call('SREM', index, id)
  return outcome
end
redis.call('HDEL', delivery, 'claim')
if #ARGV > 5 then redis.call('HSET', delivery, unpack(ARGV, 6)) end
if outcome == 'dead' then
  redis.call('ZREM', due, id)
  -- Score 0: letters are listed by id (by when their event happened), so a page cursor is
  -- the last id seen.
  redis.call('ZADD', dead, 0, id)
  -- No letter outlives its own hash (retention); the list may, briefly, and is pruned on read.
  redis.call('PEXPIRE', dead, ARGV[5])
else
  redis.call('ZADD', due, ARGV[4], id)
end
return outcome
