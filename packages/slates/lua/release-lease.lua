--[[
  Releases a lease only if this holder still holds it, so a holder whose lease lapsed cannot
  release the lease another worker took since.

    Input:
      KEYS[1] the lease key
      ARGV[1] the holder's token

    Output:
      1   released
      0   not held by this token (lapsed, or taken by another holder): nothing done
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
