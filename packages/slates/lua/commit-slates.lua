--[[
  Commits the changed slates of one session, all or nothing, each guarded by the version the
  worker read. No lock is held while a job runs: a commit that finds a newer version writes
  nothing and says which slate moved, and the worker merges and tries again.

    Input:
      KEYS[1..n]        the slate keys (one session, one hash tag)

      ARGV[1..n]        the version each slate had when read (0: it did not exist; -1: it was
                        malformed, see read_slate, and is replaced if it still is)
      ARGV[n+1..2n]     each slate's new envelope ('' deletes the slate)
      ARGV[2n+1..3n]    each slate's TTL in milliseconds

    Output:
      {1, v1, ..., vn}   committed; each slate's new version (0 where deleted)
      {-1, i, v}         KEYS[i] is at version v, not the one read: nothing written
]]
local n = #KEYS
local before = {}
for i = 1, n do
  local current = read_slate(KEYS[i])
  if current ~= tonumber(ARGV[i]) then
    return {-1, i, current}
  end
  before[i] = current
end
local result = {1}
for i = 1, n do
  local envelope = ARGV[n + i]
  if envelope == '' then
    redis.call('DEL', KEYS[i])
    result[i + 1] = 0
  else
    -- A malformed key (a list, a string, a hash with a tampered version) starts over at 1.
    if before[i] == -1 then
      redis.call('DEL', KEYS[i])
    end
    local version = math.max(before[i], 0) + 1
    redis.call('HSET', KEYS[i], 'v', version, 'd', envelope)
    redis.call('PEXPIRE', KEYS[i], ARGV[2 * n + i])
    result[i + 1] = version
  end
end
return result
