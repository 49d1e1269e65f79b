--[[
  Writes what one job (or several jobs of one session, in the same turn) changed in the session,
  each slate by its own rule, in one command. No lock is held while jobs run. Only the `cas`
  rule can refuse: a compare-and-set that finds a newer version writes nothing at all and says
  which slate moved; every other rule is blind and never conflicts.

    Input:
      KEYS[1]          the session's index (a set of the names of the slates it holds)
      KEYS[2..m+1]     the slate each write is for (one session, one hash tag)

      ARGV[1]          m, the number of writes; then, for each write in order:
        rule, name, ttl (ms), and by rule:
        'cas'       expected version (0: absent; -1: malformed, replaced), envelope ('' deletes)
        'create'    envelope: written only if the slate does not exist
        'fields'    an incarnation id (kept by a slate this write creates), count, then count
                    pairs of field, envelope ('' deletes the field)
        'counters'  jobs to add, errors to add, last use (ms since the epoch), and 1 to add only
                    to counters that exist (a count written behind does not bring back a session
                    that was purged or expired), else 0

    Output:
      {1, r1, ..., rm} written, where by rule:
        'cas'       the new version (0 where deleted)
        'create'    {version, the stored envelope, or false when this one was written}
        'fields'    {the new version, the slate's incarnation id}
        'counters'  {created (0/1), createdAt, lastUsedAt, jobs, errors}, or false when only
                    existing counters were to be added to and there were none
      {-1, i, v}     the i-th write is a compare-and-set and its slate is at version v: nothing
                     written
]]
local rcall = redis.call
local m = tonumber(ARGV[1])
local writes = {}
local at = 2
for i = 1, m do
  local write = { key = KEYS[i + 1], rule = ARGV[at], name = ARGV[at + 1], ttl = ARGV[at + 2] }
  at = at + 3
  if write.rule == 'cas' then
    write.expected = tonumber(ARGV[at])
    write.envelope = ARGV[at + 1]
    at = at + 2
  elseif write.rule == 'create' then
    write.envelope = ARGV[at]
    at = at + 1
  elseif write.rule == 'fields' then
    write.incarnation = ARGV[at]
    local count = tonumber(ARGV[at + 1])
    write.first = at + 2
    write.count = count
    at = at + 2 + 2 * count
  else
    write.jobs = ARGV[at]
    write.errors = ARGV[at + 1]
    write.used = ARGV[at + 2]
    write.existing = ARGV[at + 3] == '1'
    at = at + 4
  end
  writes[i] = write
end

-- Every compare-and-set is checked before anything is written.
for i = 1, m do
  local write = writes[i]
  if write.rule == 'cas' then
    local current = read_slate(write.key)
    if current ~= write.expected then
      return {-1, i, current}
    end
    write.before = current
  end
end

-- A count that is not an integer (tampered) makes the counters malformed: they start over.
local function count_ok(value)
  return not value or (#value <= 18 and string.match(value, '^%d+$') ~= nil)
end

local index = KEYS[1]
-- Each written slate lives as long as its TTL, and the index as long as the longest of them.
local held = {}
local longest = 0
local function hold(write)
  rcall('PEXPIRE', write.key, write.ttl)
  held[#held + 1] = write.name
  local ttl = tonumber(write.ttl)
  if ttl > longest then
    longest = ttl
  end
end

-- HSET / HDEL of many fields, a bounded number of arguments per call (Lua's unpack has a limit).
local CHUNK = 1000
local function each_chunk(command, key, list)
  for from = 1, #list, CHUNK do
    rcall(command, key, unpack(list, from, math.min(#list, from + CHUNK - 1)))
  end
end

local result = {1}
for i = 1, m do
  local write = writes[i]
  local key = write.key
  if write.rule == 'cas' then
    if write.envelope == '' then
      rcall('DEL', key)
      rcall('SREM', index, write.name)
      result[#result + 1] = 0
    else
      -- A malformed key (a list, a string, a hash with a tampered version) starts over at 1.
      if write.before == -1 then
        rcall('DEL', key)
      end
      local version = math.max(write.before, 0) + 1
      rcall('HSET', key, 'v', version, 'd', write.envelope)
      hold(write)
      result[#result + 1] = version
    end
  elseif write.rule == 'create' then
    local version, envelope = read_slate(key)
    if version > 0 then
      result[#result + 1] = {version, envelope}
    else
      if version == -1 then
        rcall('DEL', key)
      end
      rcall('HSET', key, 'v', 1, 'd', write.envelope)
      hold(write)
      result[#result + 1] = {1, false}
    end
  elseif write.rule == 'fields' then
    local kind = read_hash(key)
    local before, incarnation = 0, false
    if kind == 1 then
      local stored = rcall('HMGET', key, 'v', 'i')
      if stored[1] then
        if #stored[1] > 15 or not string.match(stored[1], '^[1-9]%d*$') then
          kind = -1
        else
          before = tonumber(stored[1])
        end
      end
      incarnation = stored[2]
    end
    if kind == -1 then
      rcall('DEL', key)
      before, incarnation = 0, false
    end
    local version = before + 1
    local sets = {'v', version}
    local unsets = {}
    if not incarnation then
      -- A new slate, or one an older version wrote whole (in `d`, replaced by these fields).
      incarnation = write.incarnation
      sets[3], sets[4] = 'i', incarnation
      if kind == 1 then
        unsets[1] = 'd'
      end
    end
    for j = write.first, write.first + 2 * write.count - 1, 2 do
      if ARGV[j + 1] == '' then
        unsets[#unsets + 1] = ARGV[j]
      else
        sets[#sets + 1] = ARGV[j]
        sets[#sets + 1] = ARGV[j + 1]
      end
    end
    if #unsets > 0 then
      each_chunk('HDEL', key, unsets)
    end
    each_chunk('HSET', key, sets)
    result[#result + 1] = {version, incarnation}
    hold(write)
  else
    local kind = read_hash(key)
    if write.existing and kind ~= 1 then
      result[#result + 1] = false
    else
      local stored = {}
      if kind == 1 then
        stored = rcall('HMGET', key, 'jobs', 'errors', 'lastUsedAt', 'createdAt')
        if not (count_ok(stored[1]) and count_ok(stored[2])) then
          kind = -1
          stored = {}
        end
      end
      if kind == -1 then
        rcall('DEL', key)
      end
      local created = 0
      if kind ~= 1 then
        created = 1
      end
      local times = {}
      local created_at = stored[4]
      if not created_at then
        created_at = write.used
        times[#times + 1] = 'createdAt'
        times[#times + 1] = created_at
      end
      local used = stored[3]
      if not used or (tonumber(used) or 0) < tonumber(write.used) then
        used = write.used
        times[#times + 1] = 'lastUsedAt'
        times[#times + 1] = used
      end
      if #times > 0 then
        rcall('HSET', key, unpack(times))
      end
      local jobs = rcall('HINCRBY', key, 'jobs', write.jobs)
      local errors = tonumber(stored[2] or '0')
      if write.errors ~= '0' or not stored[2] then
        errors = rcall('HINCRBY', key, 'errors', write.errors)
      end
      hold(write)
      result[#result + 1] = {created, created_at, used, jobs, errors}
    end
  end
end
if #held > 0 then
  rcall('SADD', index, unpack(held))
  if rcall('PTTL', index) < longest then
    rcall('PEXPIRE', index, longest)
  end
end
-- A write ends the caller's client-side tracking of the key (Redis forgets a key once it
-- invalidated it, even for a NOLOOP caller it tells nothing): reading the keys again keeps the
-- caller told of the next write by anyone else, since it keeps what it wrote.
local written = {}
for i = 1, m do
  written[i] = writes[i].key
end
rcall('EXISTS', unpack(written))
return result
