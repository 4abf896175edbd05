-- Point a customer that lost a first-contact race at the one that won, so that any request which
-- resolved it through the index entries it briefly held follows `merged_into` from now on.
-- KEYS: the loser's meta. ARGV: the winner's id, the lifetime of an empty stub (ms).
-- Answers 1 when a write reached the loser first (the winner must then record it as merged, so
-- that its brief shows that write and its erasure removes it), 0 when it held nothing: the stub
-- then only has to outlive requests in flight.
local had = redis.call('EXISTS', KEYS[1])
redis.call('HSET', KEYS[1], 'merged_into', ARGV[1])
if had == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return had
