--[[
  Writes crawl results to the outbox and marks each one's idempotency key finished, in one atomic
  step, so a job that is retried, replayed, or picked up again after its worker died never writes
  twice. The results of the jobs a worker finishes in one turn of its event loop come in one
  call; each is written, or refused, on its own, in order (a key given twice is written once).
  A page of a named crawl also counts for its crawl, writes the records its handler pushed to the
  outbox (field `d`; a result's is `r`), and admits the links it follows to the frontier in the
  same step: each key once per crawl (its seen set), no more than the crawl's page limit, none for
  a cancelled crawl; and none of it at all when the result was written before. On a fleet of more
  than one shard the crawl's seen set is elsewhere: the links go to the frontier as one entry to
  admit (field `l`), which a mover admits on the fleet tag (admit-links.lua).
  Nothing is trimmed here: the outbox gives up an entry only when every sink has acknowledged it
  (trim-outbox.lua), and workers hold back while it is full.

    Input:
      KEYS[1]          results outbox stream  ({prefix}:results)
      KEYS[2]          the outbox's byte count  ({prefix}:results:bytes)
      KEYS[3]          each entry's size, under the entry's id  ({prefix}:results:sizes)
      KEYS[4]          the results written in this 10 s  ({prefix}:results:rate:<10 s since the epoch>)
      KEYS[5]          the frontier: links waiting to be enqueued  ({prefix}:frontier)
      then, for each result i (from 0), at KEYS[6 + 3i], KEYS[7 + 3i], KEYS[8 + 3i]:
                       its ledger key  ({prefix}:ledger:<idempotencyKey>)
                       its crawl's counts on this shard  ({prefix}:crawls:<name>, the crawl's hash
                       with one shard; the ledger key again for no crawl)
                       its crawl's seen set  ({prefix}:crawls:<name>:seen; with more than one
                       shard, unused: the crawl's counts on this shard again; the ledger key again
                       for no crawl)

      ARGV[1]          ledger TTL, seconds
      then, for each result i, at ARGV[2 + 2i] and ARGV[3 + 2i]:
                       the result, JSON
                       its crawl part, JSON {max, span, links: [[key, job JSON], ...], records: [record JSON, ...],
                       forward?, forwarded?} (span: the 10 s since the epoch it is written in;
                       forward: with more than one shard, the frontier entry of the page's links
                       to admit, JSON, and forwarded how many they are); "" for no crawl

    Output:
      {w1, id1, a1, ..., wn, idn, an, entries, bytes}, for each result in order:
        1, entryId, admitted    written; entryId is the new stream entry; links admitted (or forwarded)
        0, entryId, 0           the key was already finished: nothing written; entryId is the earlier entry
      then the outbox's entries and bytes after the call.
]]
local rcall = redis.call
local stream = KEYS[1]
local ttl = ARGV[1]
local answer = {}
local added = 0
local count = 0

-- Writes a page's records and admits its links to its crawl's frontier; answers how many links.
local function admit(crawl, seen, part)
  rcall('HINCRBY', crawl, 'stored', 1)
  local spec = cjson.decode(part)
  -- Pages stored per 10 s, in a ring of 18 slots (3 minutes): `crawls show`'s last minute.
  if spec.span then
    local slot = spec.span % 18
    local span = string.format('%d', spec.span)
    if rcall('HGET', crawl, 't' .. slot) ~= span then rcall('HSET', crawl, 't' .. slot, span, 'r' .. slot, 0) end
    rcall('HINCRBY', crawl, 'r' .. slot, 1)
  end
  local records = spec.records or {}
  for _, record in ipairs(records) do
    local recordId = rcall('XADD', stream, '*', 'd', record)
    rcall('XADD', KEYS[3], recordId, 'n', #record)
    added = added + #record
  end
  if #records > 0 then rcall('HINCRBY', crawl, 'records', #records) end
  -- More than one shard: the crawl's seen set is on the fleet tag, out of this script's slot. The
  -- links go to this shard's frontier as one entry still to be admitted (a mover admits them).
  if spec.forward then
    rcall('XADD', KEYS[5], '*', 'l', spec.forward)
    -- Pages whose links are on their way to admission: the crawl counts them as pending.
    rcall('HINCRBY', crawl, 'forwarded', 1)
    return spec.forwarded
  end
  if #spec.links == 0 or rcall('HGET', crawl, 'state') == 'cancelled' then return 0 end
  local discovered = tonumber(rcall('HGET', crawl, 'discovered') or '0')
  local admitted = 0
  for _, link in ipairs(spec.links) do
    if spec.max > 0 and discovered >= spec.max then break end
    if rcall('SADD', seen, link[1]) == 1 then
      rcall('XADD', KEYS[5], '*', 'j', link[2])
      discovered = discovered + 1
      admitted = admitted + 1
    end
  end
  if admitted > 0 then rcall('HINCRBY', crawl, 'discovered', admitted) end
  return admitted
end

local results = (#KEYS - 5) / 3
for i = 0, results - 1 do
  local ledger = KEYS[6 + 3 * i]
  local earlier = rcall('GET', ledger)
  if earlier then
    answer[#answer + 1] = 0
    answer[#answer + 1] = earlier
    answer[#answer + 1] = 0
  else
    local json = ARGV[2 + 2 * i]
    local entryId = rcall('XADD', stream, '*', 'r', json)
    -- Its size, beside it: trimming counts what it gives up without reading the results.
    rcall('XADD', KEYS[3], entryId, 'n', #json)
    rcall('SET', ledger, entryId, 'EX', ttl)
    added = added + #json
    count = count + 1
    local part = ARGV[3 + 2 * i]
    answer[#answer + 1] = 1
    answer[#answer + 1] = entryId
    answer[#answer + 1] = part == '' and 0 or admit(KEYS[7 + 3 * i], KEYS[8 + 3 * i], part)
  end
end
-- The pace of writing, kept apart from the outbox, which sinks empty (status's last minute).
if count > 0 then
  rcall('INCRBY', KEYS[4], count)
  rcall('EXPIRE', KEYS[4], 180)
end
local bytes
if added > 0 then
  bytes = rcall('INCRBY', KEYS[2], added)
else
  bytes = tonumber(rcall('GET', KEYS[2]) or '0')
end
answer[#answer + 1] = rcall('XLEN', stream)
answer[#answer + 1] = bytes
return answer
