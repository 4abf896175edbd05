-- Remove one hand-off and every queue entry of it, in the tenant's slot.
-- KEYS: hand-off hash, deadline, then for each status the one-queue and all-queues sets (12)
-- Answers {1, continuation code or ''} when it existed, {0, ''} otherwise.
local ho = KEYS[1]
local id, code = redis.call('HGET', ho, 'id'), redis.call('HGET', ho, 'code')
if not id then return {0, ''} end
for k = 2, #KEYS do redis.call('ZREM', KEYS[k], id) end
redis.call('DEL', ho)
return {1, code or ''}
