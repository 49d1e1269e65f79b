--[[
  Reads what a job needs of its session in one command: each slate's version and envelope, the
  quarantine flag and the breaker's open-until time. All keys carry the session's hash tag.
  A worker that already opened a slate sends the SHA-1 of the envelope it opened; a slate still
  holding exactly that envelope comes back as 1 instead of its envelope, so the worker neither
  receives nor decrypts it again. Any change to the stored envelope (a new sealing, tampering)
  sends the envelope.

    Input:
      KEYS[1..n]  the slates, in the order asked
      KEYS[n+1]   the quarantine flag
      KEYS[n+2]   the breaker flag

      ARGV[1..n]  the SHA-1 (hex) of the envelope the worker holds for each slate, or '' for none

    Output:
      { v1, d1, v2, d2, ..., quarantined (0/1), breaker open-until or false }
      where d is the envelope, 1 when it is the one the worker holds; a missing slate reads as
      0, false and a malformed one (read_slate) as -1, false
]]
local rcall = redis.call
local n = #KEYS - 2
local out = {}
for i = 1, n do
  local version, envelope = read_slate(KEYS[i])
  local known = ARGV[i]
  out[#out + 1] = version
  if envelope and known and known ~= '' and redis.sha1hex(envelope) == known then
    out[#out + 1] = 1
  else
    out[#out + 1] = envelope
  end
end
out[#out + 1] = rcall('EXISTS', KEYS[n + 1])
out[#out + 1] = rcall('GET', KEYS[n + 2])
return out
