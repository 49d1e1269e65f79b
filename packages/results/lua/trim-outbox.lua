--[[
  Trims the results outbox below what every sink has acknowledged, and no further. A sink is a
  consumer group; what it has acknowledged is everything up to its last delivered entry except
  what is still pending (delivered to a consumer, not yet acknowledged). With no group, nothing
  is trimmed: results wait for a sink. Or, for `purge`, trims below a given id whatever the
  sinks have. The byte count goes down by the sizes kept beside the entries (never reading the
  results themselves), and the sizes go with their entries.

    Input:
      KEYS[1]          results outbox stream  ({prefix}:results)
      KEYS[2]          the outbox's byte count  ({prefix}:results:bytes)
      KEYS[3]          each entry's size  ({prefix}:results:sizes)

      ARGV[1]          entries trimmed at most in this call
      ARGV[2]          '' to trim what every sink has; or an id to trim everything below it

    Output:
      {trimmed, entries, bytes, more}
        trimmed        entries removed by this call
        entries, bytes what the outbox holds after it
        more           1 when more could be trimmed by calling again
]]
local rcall = redis.call
local stream = KEYS[1]
local limit = tonumber(ARGV[1])

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function below(a, b)
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams < bms or (ams == bms and aseq < bseq)
end

local function after(id)
  local ms, seq = parse(id)
  return string.format('%.0f-%.0f', ms, seq + 1)
end

local function fill(trimmed, more)
  return {trimmed, rcall('XLEN', stream), tonumber(rcall('GET', KEYS[2]) or '0'), more}
end

if rcall('EXISTS', stream) == 0 then return fill(0, 0) end

-- The first entry some sink still needs: its oldest pending one, else the one after its last.
local keep
local groups = {}
if ARGV[2] ~= '' then keep = ARGV[2] else groups = rcall('XINFO', 'GROUPS', stream) end
for _, group in ipairs(groups) do
  local name, pending, last
  for i = 1, #group, 2 do
    local field = group[i]
    if field == 'name' then name = group[i + 1]
    elseif field == 'pending' then pending = group[i + 1]
    elseif field == 'last-delivered-id' then last = group[i + 1] end
  end
  local needs
  if pending > 0 then
    needs = rcall('XPENDING', stream, name)[2]
  else
    needs = after(last)
  end
  if keep == nil or below(needs, keep) then keep = needs end
end
if keep == nil then return fill(0, 0) end

local oldest = rcall('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
if oldest == nil or not below(oldest[1], keep) then return fill(0, 0) end
local sizes = rcall('XRANGE', KEYS[3], '-', '(' .. keep, 'COUNT', limit)
local bytes = 0
for _, entry in ipairs(sizes) do bytes = bytes + tonumber(entry[2][2]) end
-- Entries written before sizes were kept beside them have none: trimmed with the first step.
local upTo = keep
if #sizes == limit then upTo = after(sizes[#sizes][1]) end
local trimmed = rcall('XTRIM', stream, 'MINID', upTo)
rcall('XTRIM', KEYS[3], 'MINID', upTo)
if bytes > 0 then
  local left = rcall('DECRBY', KEYS[2], bytes)
  if left < 0 then rcall('SET', KEYS[2], 0) end
end
return fill(trimmed, #sizes == limit and 1 or 0)
