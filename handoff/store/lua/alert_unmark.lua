-- Let a customer raise an alert of this kind again: remove the open-alert marker that
-- customer_write.lua set, if it still names the alert being acknowledged (a newer alert of the
-- same kind keeps its own).
-- KEYS: the customer's flags hash
-- ARGV: the marker field (`!alert:<kind>`), the alert id
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and cmsgpack.unpack(held)[1] == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
