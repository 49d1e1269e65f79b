--[[
  Shared by the session scripts (prepended when they are loaded): how the hash slates (the
  cookie fields and the meta counters) are read.

    read_hash(key) returns kind:
      0     the key does not exist
      1     a hash
      -1    anything else (another type): such a slate is never used, and the next write
            replaces it
]]
local function read_hash(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then
    return 0
  end
  if kind ~= 'hash' then
    return -1
  end
  return 1
end

--[[
  The version a fields slate carries in its `v` field: 0 when it has none, -1 when `v` is not a
  positive integer below 10^15 (tampered: the next write starts the slate over).
]]
local function fields_version(key)
  local v = redis.call('HGET', key, 'v')
  if not v then
    return 0
  end
  if #v > 15 or not string.match(v, '^[1-9]%d*$') then
    return -1
  end
  return tonumber(v)
end
