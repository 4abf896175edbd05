-- Put a dead letter back in the queue, due now, with its attempts counted afresh.
-- KEYS: the tenant's due zset, the delivery hash, the subscription's dead letters
-- ARGV: delivery id, now_ms
local due, delivery, dead = KEYS[1], KEYS[2], KEYS[3]
local id, now = ARGV[1], ARGV[2]
if redis.call('ZREM', dead, id) == 0 then return 0 end
if redis.call('EXISTS', delivery) == 0 then return 0 end
redis.call('HSET', delivery, 'attempts', 0)
redis.call('HDEL', delivery, 'dead_ms')
redis.call('ZADD', due, now, id)
return 1
