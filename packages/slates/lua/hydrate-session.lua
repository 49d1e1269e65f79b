--[[
  Reads what a job needs of its session in one command: each slate, the quarantine flag and the
  breaker's open-until time. All keys carry the session's hash tag.

  What a worker already holds is not sent again: for a sealed slate it sends the SHA-1 of the
  envelope it opened, for a fields slate (cookies) its incarnation and version (`i:v`: a slate
  deleted and written again is another incarnation); a slate still holding exactly that comes
  back as 1 instead of its contents. A sealed slate's any change (a write, a new sealing,
  tampering) sends its contents; a fields slate's fields changed without a write (tampering)
  are noticed through client-side tracking, which drops what the worker holds.

    Input:
      KEYS[1..n]      the slates, in the order asked
      KEYS[n+1]       the quarantine flag
      KEYS[n+2]       the breaker flag

      ARGV[1..n]      each slate's shape: 's' sealed ({v, d}), 'f' fields (a hash of sealed
                      fields with a version in `v`), 'c' counters (a hash of counts)
      ARGV[n+1..2n]   what the worker holds of each slate (sealed: the envelope's SHA-1; fields:
                      `incarnation:version`), or '' for nothing

    Output:
      { v1, d1, v2, d2, ..., quarantined (0/1), breaker open-until or false }
      sealed:    v the version (0 missing, -1 malformed), d the envelope, 1 (the one held) or false
      fields:    v the version, d { 'i', incarnation, field, envelope, ... } (without `v`), 1
                 (the one held) or false (missing or malformed)
      counters:  v 1 (exists), 0 (missing) or -1 (malformed), d { field, value, ... } or false
]]
local rcall = redis.call
local n = #KEYS - 2
local out = {}
for i = 1, n do
  local key, shape, known = KEYS[i], ARGV[i], ARGV[n + i]
  if shape == 's' then
    local version, envelope = read_slate(key)
    out[#out + 1] = version
    if envelope and known ~= '' and redis.sha1hex(envelope) == known then
      out[#out + 1] = 1
    else
      out[#out + 1] = envelope
    end
  else
    local kind = read_hash(key)
    if kind ~= 1 then
      out[#out + 1] = kind
      out[#out + 1] = false
    elseif shape == 'f' then
      local version = fields_version(key)
      out[#out + 1] = version
      if version > 0 and known ~= '' and (rcall('HGET', key, 'i') or '') .. ':' .. version == known then
        out[#out + 1] = 1
      else
        local all = rcall('HGETALL', key)
        local fields = {}
        for j = 1, #all, 2 do
          if all[j] ~= 'v' then
            fields[#fields + 1] = all[j]
            fields[#fields + 1] = all[j + 1]
          end
        end
        out[#out + 1] = fields
      end
    else
      out[#out + 1] = 1
      out[#out + 1] = rcall('HGETALL', key)
    end
  end
end
out[#out + 1] = rcall('EXISTS', KEYS[n + 1])
out[#out + 1] = rcall('GET', KEYS[n + 2])
return out
