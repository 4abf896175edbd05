-- Apply one batch of changes to one customer, atomically, in that customer's hash slot.
-- KEYS: the customer's keys in CustomerKeys.all() order (meta first, events eleventh), then its
-- erasure tombstone.
-- ARGV: now_ms, ttl_ms, events_maxlen, then seven counts
--   n_hset n_hsetnx n_turns n_xadd n_zadd n_events n_hmin
-- followed by the operations in that order:
--   hset/hsetnx: key_index field value       turns: dedupe_field record
--   xadd: key_index record                    zadd: key_index score member
--   events: type record                       hmin: key_index field number (keeps the lowest)
-- Turns are deduplicated by their field in `tids` (conversation + turn id), so a retried post
-- appends nothing twice. A customer merged into another answers {"moved", survivor} and is left
-- untouched: the caller retries on the survivor. One that was erased answers {"gone"}.
-- A customer that does not exist yet is created by whichever write reaches it first: an index
-- entry may point at it before the write of the request that linked it lands, and that request
-- may never land at all. Only the tombstone an erasure leaves tells "erased" from "not yet".
local meta, turns, tids, events, erased = KEYS[1], KEYS[3], KEYS[4], KEYS[11], KEYS[12]
local now, ttl, maxlen = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local moved = redis.call('HGET', meta, 'merged_into')
if moved then return {'moved', moved} end
if redis.call('EXISTS', erased) == 1 then return {'gone'} end

local n_hset, n_hsetnx, n_turns = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local n_xadd, n_zadd, n_events = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local n_hmin = tonumber(ARGV[10])
local i = 11

for _ = 1, n_hset do
  redis.call('HSET', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]); i = i + 3
end
for _ = 1, n_hsetnx do
  redis.call('HSETNX', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]); i = i + 3
end

local appended, duplicates, cursors = 0, 0, {}
for t = 1, n_turns do
  local field, record = ARGV[i], ARGV[i + 1]; i = i + 2
  if redis.call('HEXISTS', tids, field) == 1 then
    duplicates = duplicates + 1
    cursors[t] = ''
  else
    local id = redis.call('XADD', turns, '*', 'd', record)
    redis.call('HSET', tids, field, 1)
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 't', 'turn', 'd', record, 'c', id)
    appended = appended + 1
    cursors[t] = id
  end
end
for _ = 1, n_xadd do
  redis.call('XADD', KEYS[tonumber(ARGV[i])], '*', 'd', ARGV[i + 1]); i = i + 2
end
for _ = 1, n_zadd do
  redis.call('ZADD', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]); i = i + 3
end
for _ = 1, n_events do
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 't', ARGV[i], 'd', ARGV[i + 1]); i = i + 2
end
for _ = 1, n_hmin do
  local key, field, value = KEYS[tonumber(ARGV[i])], ARGV[i + 1], tonumber(ARGV[i + 2])
  local current = tonumber(redis.call('HGET', key, field))
  if not current or value < current then redis.call('HSET', key, field, value) end
  i = i + 3
end

redis.call('HSETNX', meta, 'created', now)
redis.call('HSET', meta, 'updated', now)
local version = redis.call('HINCRBY', meta, 'ver', 1)
-- Retention is inactivity: every write pushes the whole customer's expiry forward.
for k = 1, #KEYS - 1 do redis.call('PEXPIRE', KEYS[k], ttl) end
return {'ok', version, appended, duplicates, cursors}
