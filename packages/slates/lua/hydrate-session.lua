--[[
  Reads what a job needs of its session in one command: each slate's version and envelope, the
  quarantine flag and the breaker's open-until time. All keys carry the session's hash tag.

    Input:
      KEYS[1..n]  the slates, in the order asked
      KEYS[n+1]   the quarantine flag
      KEYS[n+2]   the breaker flag

    Output:
      { v1, d1, v2, d2, ..., quarantined (0/1), breaker open-until or false }
      where a missing slate reads as false, false
]]
local rcall = redis.call
local n = #KEYS - 2
local out = {}
for i = 1, n do
  local fields = rcall('HMGET', KEYS[i], 'v', 'd')
  out[#out + 1] = fields[1]
  out[#out + 1] = fields[2]
end
out[#out + 1] = rcall('EXISTS', KEYS[n + 1])
out[#out + 1] = rcall('GET', KEYS[n + 2])
return out
