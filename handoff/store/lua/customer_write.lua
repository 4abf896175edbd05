-- Apply one batch of changes to one customer, atomically, in that customer's hash slot.
-- KEYS: the customer's keys in CustomerKeys.all() order (meta first, events eleventh, outbox
-- twelfth), then its erasure tombstone.
-- ARGV: now_ms, ttl_ms, events_maxlen, then nine counts
--   n_hset n_hsetnx n_turns n_xadd n_zadd n_events n_hmin n_hmerge n_outbox
-- followed by the operations in that order:
--   hset/hsetnx: key_index field value       turns: dedupe_field record
--   xadd: key_index record                    zadd: key_index score member
--   events: type record                       hmin: key_index field number (keeps the lowest)
--   hmerge: key_index field record overriding (msgpack maps; see below)
--   outbox (when n_outbox > 0): stale_before_ms, then per entry: ref field meta (see below)
-- Turns are deduplicated by their field in `tids` (conversation + turn id), so a retried post
-- appends nothing twice. A customer merged into another answers {"moved", survivor} and is left
-- untouched: the caller retries on the survivor. One that was erased answers {"gone"}.
-- A customer that does not exist yet is created by whichever write reaches it first: an index
-- entry may point at it before the write of the request that linked it lands, and that request
-- may never land at all. Only the tombstone an erasure leaves tells "erased" from "not yet".
local meta, turns, tids, events, outbox = KEYS[1], KEYS[3], KEYS[4], KEYS[11], KEYS[12]
local convs, flags = KEYS[5], KEYS[9]
local erased = KEYS[#KEYS]
local now, ttl, maxlen = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local moved = redis.call('HGET', meta, 'merged_into')
if moved then return {'moved', moved} end
if redis.call('EXISTS', erased) == 1 then return {'gone'} end

local n_hset, n_hsetnx, n_turns = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local n_xadd, n_zadd, n_events = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local n_hmin, n_hmerge, n_outbox = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local i = 13

for _ = 1, n_hset do
  redis.call('HSET', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]); i = i + 3
end
for _ = 1, n_hsetnx do
  redis.call('HSETNX', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]); i = i + 3
end

local appended, duplicates, cursors, records = 0, 0, {}, {}
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
    records['t' .. t] = record
  end
end
for _ = 1, n_xadd do
  redis.call('XADD', KEYS[tonumber(ARGV[i])], '*', 'd', ARGV[i + 1]); i = i + 2
end
for _ = 1, n_zadd do
  redis.call('ZADD', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]); i = i + 3
end
for e = 1, n_events do
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 't', ARGV[i], 'd', ARGV[i + 1])
  records['e' .. e] = ARGV[i + 1]
  i = i + 2
end
for _ = 1, n_hmin do
  local key, field, value = KEYS[tonumber(ARGV[i])], ARGV[i + 1], tonumber(ARGV[i + 2])
  local current = tonumber(redis.call('HGET', key, field))
  if not current or value < current then redis.call('HSET', key, field, value) end
  i = i + 3
end
-- A record that is added to, never rewritten: what it already holds stays (when and where it
-- was first seen), what it lacks is filled in, and only the fields named in `overriding` (a
-- space-separated list, e.g. a claim becoming linked) take the new value. Unchanged, it is not
-- written again.
for _ = 1, n_hmerge do
  local key, field, record = KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]
  local stored = redis.call('HGET', key, field)
  if not stored then
    redis.call('HSET', key, field, record)
  else
    local old, new, changed = cmsgpack.unpack(stored), cmsgpack.unpack(record), false
    for name in string.gmatch(ARGV[i + 3], '%S+') do
      if new[name] ~= nil and old[name] ~= new[name] then old[name] = new[name]; changed = true end
    end
    for name, value in pairs(new) do
      if old[name] == nil then old[name] = value; changed = true end
    end
    if changed then redis.call('HSET', key, field, cmsgpack.pack(old)) end
  end
  i = i + 4
end

-- Webhook deliveries this write owes, kept with it in the customer's slot until the tenant's
-- delivery queue has them (the writer then deletes them), so a process that dies in between
-- loses none. An entry is `<ms>:<event id>` -> msgpack [meta, record, cursor], for each event
-- that happened (a duplicate turn owes nothing). Entries older than `stale_before_ms` were left
-- by a writer that died: this writer takes them over (stamped anew, so no other one does) and
-- answers them with its own.
local owed = {}
if n_outbox > 0 then
  local stale_before = tonumber(ARGV[i]); i = i + 1
  for _ = 1, n_outbox do
    local ref, field, info = ARGV[i], ARGV[i + 1], ARGV[i + 2]; i = i + 3
    local record = records[ref]
    -- A supervisor alert (`<ms>:alert:<kind>:<alert id>`, see services/alerts.py) is owed only
    -- while the customer has no open alert of its kind: `!alert:<kind>` in `flags` names the
    -- open one and when it was raised, until an acknowledgement clears it (or, unacknowledged,
    -- it outlives its retention). An owed alert carries its turn's conversation record, as the
    -- turn may not name its channel.
    local kind, alert = string.match(field, '^%d+:alert:([%w_-]+):(al_%w+)$')
    local conv = nil
    if record and kind then
      local marker = '!alert:' .. kind
      local held = redis.call('HGET', flags, marker)
      if held and tonumber(now) - cmsgpack.unpack(held)[2] < ttl then
        record = nil
      else
        redis.call('HSET', flags, marker, cmsgpack.pack({alert, tonumber(now)}))
        conv = redis.call('HGET', convs, cmsgpack.unpack(record)[2]) or ''
      end
    end
    if record then
      local t = tonumber(string.sub(ref, 2))
      local cursor = string.sub(ref, 1, 1) == 't' and cursors[t] or ''
      local value = cmsgpack.pack({info, record, cursor, conv})
      redis.call('HSET', outbox, field, value)
      owed[#owed + 1] = field
      owed[#owed + 1] = value
    end
  end
  local held = redis.call('HGETALL', outbox)
  local taken = 0
  for h = 1, #held, 2 do
    local stamp, rest = string.match(held[h], '^(%d+):(.*)$')
    if stamp and tonumber(stamp) < stale_before and taken < 100 then
      local field = now .. ':' .. rest
      redis.call('HDEL', outbox, held[h])
      redis.call('HSET', outbox, field, held[h + 1])
      owed[#owed + 1] = field
      owed[#owed + 1] = held[h + 1]
      taken = taken + 1
    end
  end
end

redis.call('HSETNX', meta, 'created', now)
redis.call('HSET', meta, 'updated', now)
local version = redis.call('HINCRBY', meta, 'ver', 1)
-- Retention is inactivity: every write pushes the whole customer's expiry forward.
for k = 1, #KEYS - 1 do redis.call('PEXPIRE', KEYS[k], ttl) end
return {'ok', version, appended, duplicates, cursors, owed}
