-- Claim due deliveries under a lease: exactly one process gets each, and a claim whose holder
-- died runs out (its score is the lease's end), so the delivery is due again for anyone.
-- KEYS: the tenant's due zset, then one delivery hash per candidate
-- ARGV: now_ms, lease_until_ms, claim token, then the candidates' ids in KEYS order
-- Answers the claimed deliveries as flat hashes; a candidate another process claimed since it
-- was listed is skipped, one whose hash expired (retention) or was erased is dropped.
local due, now, lease, token = KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[3]
local out = {}
for k = 2, #KEYS do
  local id = ARGV[k + 2]
  local score = redis.call('ZSCORE', due, id)
  if score and tonumber(score) <= now then
    if redis.call('EXISTS', KEYS[k]) == 0 then
      redis.call('ZREM', due, id)
    else
      redis.call('ZADD', due, lease, id)
      redis.call('HSET', KEYS[k], 'claim', token)
      out[#out + 1] = redis.call('HGETALL', KEYS[k])
    end
  end
end
return out
