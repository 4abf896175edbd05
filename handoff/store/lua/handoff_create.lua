-- Create a pending hand-off in the tenant's slot, or return the one an Idempotency-Key made.
-- KEYS: hand-off hash, queue events, pending queue, pending all-queues, deadline, idempotency key,
--       then (optional) this hour's and this day's effort counters (see handoff/store/kpis.py)
-- ARGV: now_ms, events_maxlen, score, deadline_ms, idem_ttl_ms (0: no key), fingerprint,
--       retention_ms, then field value pairs of the hand-off
local ho, events, q_one, q_all, deadline, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now, maxlen, score, due = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local idem_ttl, fingerprint, retention = tonumber(ARGV[5]), ARGV[6], ARGV[7]

if idem_ttl > 0 then
  local seen = redis.call('GET', idem)
  if seen then
    local sep = string.find(seen, ' ', 1, true)
    local id, fp = string.sub(seen, 1, sep - 1), string.sub(seen, sep + 1)
    if fp ~= fingerprint then return {'mismatch', id} end
    return {'existing', id}
  end
end

local fields, record = {}, {}
for i = 8, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]; fields[#fields + 1] = ARGV[i + 1]
  record[ARGV[i]] = ARGV[i + 1]
end
if redis.call('EXISTS', ho) == 1 then return {'exists', record['id']} end
redis.call('HSET', ho, unpack(fields))
-- The hand-off holds customer data (the summary): it expires with the customer's retention.
redis.call('PEXPIRE', ho, retention)
redis.call('ZADD', q_one, score, record['id'])
redis.call('ZADD', q_all, score, record['id'])
redis.call('ZADD', deadline, due, record['id'])
record['code'] = nil
redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 't', 'handoff.requested',
           'd', cmsgpack.pack(record))
-- After the writes: PEXPIRE on a queue or stream that did not exist yet would do nothing.
for _, key in ipairs({events, q_one, q_all, deadline}) do redis.call('PEXPIRE', key, retention) end
if idem_ttl > 0 then
  redis.call('SET', idem, record['id'] .. ' ' .. fingerprint, 'PX', idem_ttl)
end
for k = 7, #KEYS do
  redis.call('HINCRBY', KEYS[k], record['queue'] .. '|requested', 1)
  redis.call('PEXPIRE', KEYS[k], retention)
end
return {'created', record['id']}
