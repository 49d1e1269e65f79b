--[[
  Shared by the slate scripts (prepended when they are loaded): how a slate key is read.

    read_slate(key) returns version, envelope:
      0, false        the key does not exist
      v, envelope     a well-formed slate: a hash whose `v` is a positive integer below 10^15
                      and that has a `d`
      -1, false       anything else (another type, a tampered or missing version or envelope):
                      such a slate is never used, and a commit that read it as -1 replaces it
]]
local function read_slate(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then
    return 0, false
  end
  if kind ~= 'hash' then
    return -1, false
  end
  local fields = redis.call('HMGET', key, 'v', 'd')
  local v, d = fields[1], fields[2]
  if not v or not d or #v > 15 or not string.match(v, '^[1-9]%d*$') then
    return -1, false
  end
  return tonumber(v), d
end
