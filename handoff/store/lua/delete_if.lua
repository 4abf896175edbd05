-- Delete a single-key index entry only if it still points where we think: an identity that
-- moved on to another customer must survive that customer's erasure.
-- KEYS: the entry; ARGV: the value it must hold. Answers 1 if deleted.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
