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
local function held(write)
  rcall('PEXPIRE', write.key, write.ttl)
  rcall('SADD', index, write.name)
  local left = rcall('PTTL', index)
  if left < tonumber(write.ttl) then
    rcall('PEXPIRE', index, write.ttl)
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
      held(write)
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
      held(write)
      result[#result + 1] = {1, false}
    end
  elseif write.rule == 'fields' then
    if read_hash(key) == -1 or fields_version(key) == -1 then
      rcall('DEL', key)
    end
    for j = write.first, write.first + 2 * write.count - 1, 2 do
      if ARGV[j + 1] == '' then
        rcall('HDEL', key, ARGV[j])
      else
        rcall('HSET', key, ARGV[j], ARGV[j + 1])
      end
    end
    -- A whole-jar envelope of an older version, replaced by the fields written from it.
    rcall('HDEL', key, 'd')
    rcall('HSETNX', key, 'i', write.incarnation)
    result[#result + 1] = {rcall('HINCRBY', key, 'v', 1), rcall('HGET', key, 'i')}
    held(write)
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
      local created_at = stored[4]
      if not created_at then
        created_at = write.used
        rcall('HSET', key, 'createdAt', created_at)
      end
      local used = stored[3]
      if not used or (tonumber(used) or 0) < tonumber(write.used) then
        used = write.used
        rcall('HSET', key, 'lastUsedAt', used)
      end
      local jobs = rcall('HINCRBY', key, 'jobs', write.jobs)
      local errors = rcall('HINCRBY', key, 'errors', write.errors)
      held(write)
      result[#result + 1] = {created, created_at, used, jobs, errors}
    end
  end
end
-- A write ends the caller's client-side tracking of the key (Redis forgets a key once it
-- invalidated it, even for a NOLOOP caller it tells nothing): reading each key again keeps the
-- caller told of the next write by anyone else, since it keeps what it wrote.
for i = 1, m do
  rcall('EXISTS', writes[i].key)
end
return result
