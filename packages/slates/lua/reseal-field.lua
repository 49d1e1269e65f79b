--[[
  Replaces one field's envelope with the same value sealed under the ring's current key, only if
  the field still holds the envelope that was re-sealed: a worker that wrote the field meanwhile
  already sealed it with the current key.

    Input:
      KEYS[1]  the slate (a hash)
      ARGV[1]  the field
      ARGV[2]  the envelope read
      ARGV[3]  the new envelope

    Output:
      1   replaced
      0   the field changed (or went) meanwhile: left as it is
]]
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
